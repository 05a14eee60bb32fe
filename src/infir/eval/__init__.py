"""Evaluation: benchmark tasks, batched generation, answer checking and a sandbox for generated code.

- `registry.get_task(name, data_path=None, **options)`: GSM8K, MATH, MATH-500, HumanEval, MBPP, MMLU,
  MMLU-STEM, the tiny recipe's held-out `reasoning` problems and any reasoning-gym generator (`rg:<name>`).
  The same Task objects serve evaluation, RL rewards (`Task.reward`), synthesis verification and
  decontamination (`Task.decontamination_texts`).
- `generate.Generator`: batched greedy / sampled generation with KV cache and stop strings (reused by
  synthesis and RL); `loglik.loglikelihood` for multiple choice; `backends` adds vLLM where it runs.
- `sandbox.run_python`: runs model-written code in namespaces under OS limits.
- `runner` evaluates a model on tasks; `stage.run` is the recipe's eval stage; `cli.main` is
  `infir eval --model ... --tasks ...` and `infir eval score ...`.
"""
