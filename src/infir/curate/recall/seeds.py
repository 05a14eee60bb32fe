"""Named document generators: infir's builtin corpora plus recall seeds made on any machine.

Seeds for the recall classifiers must never come from the corpus being curated, so they are made
here from what an install has:
- `curate:math_text`: worked problems in the style of math pages, with LaTeX written out
  exactly (equations, derivatives, integrals, sums, probability, geometry), figures drawn in
  Asymptote as competition pages do, and reasoning-gym problems from its algebra, number-theory
  and geometry families;
- `curate:python_code`: Python sources of infir's own required packages (torch, transformers, ...),
  which are not Python's standard library. Only those: what else is installed beside infir (the
  test extras, a user's other tools) must not change the seeds, the classifier or the corpus.
"""

from __future__ import annotations

import os
import random
import re
import sysconfig
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

# reasoning-gym's sympy-backed families (polynomial equations, integration, advanced geometry)
# take a second each; the LaTeX problems below cover the same ground.
_RG_FAMILIES = [
    "gcd",
    "lcm",
    "prime_factorization",
    "complex_arithmetic",
    "fraction_simplification",
    "simple_geometry",
    "decimal_arithmetic",
    "power_function",
    "count_primes",
    "dice",
]


def _poly(coeffs: list[int], var: str = "x") -> str:
    """LaTeX of a polynomial from its coefficients, highest degree first."""
    terms = []
    degree = len(coeffs) - 1
    for k, c in enumerate(coeffs):
        power = degree - k
        if c == 0:
            continue
        mag = "" if abs(c) == 1 and power else str(abs(c))
        body = mag + (var if power >= 1 else "") + (f"^{{{power}}}" if power > 1 else "")
        terms.append(("- " if c < 0 else "+ ") + body if terms else ("-" if c < 0 else "") + body)
    return " ".join(terms) or "0"


def _frac(p: int, q: int) -> str:
    f = Fraction(p, q)
    return str(f.numerator) if f.denominator == 1 else f"\\frac{{{f.numerator}}}{{{f.denominator}}}"


def _latex_problem(rng: random.Random) -> str:
    """One worked problem in the style of competition-math pages (exact arithmetic, no CAS needed)."""
    kind = rng.randrange(7)
    a, b, c = (rng.randint(1, 9) for _ in range(3))
    if kind == 0:
        r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
        return (
            f"Solve the equation ${_poly([1, -(r1 + r2), r1 * r2])} = 0$ for $x$.\n\nSolution: Factoring gives "
            f"$({_poly([1, -r1])})({_poly([1, -r2])}) = 0$, so the roots are $x = {r1}$ and $x = {r2}$. "
            f"Their sum is $\\boxed{{{r1 + r2}}}$."
        )
    if kind == 1:
        return (
            f"Find the derivative of $f(x) = {_poly([a, 0, b, c])}$ and evaluate $f'(1)$.\n\nBy the power rule, "
            f"$f'(x) = {_poly([3 * a, 0, b])}$, hence $f'(1) = \\boxed{{{3 * a + b}}}$."
        )
    if kind == 2:
        return (
            f"Evaluate the integral $\\int_0^1 \\left({_poly([a, b, c])}\\right) \\, dx$.\n\nAn antiderivative is "
            f"$\\frac{{{a}}}{{3}}x^{{3}} + \\frac{{{b}}}{{2}}x^{{2}} + {c}x$, so the integral equals "
            f"$\\boxed{{{_frac(2 * a + 3 * b + 6 * c, 6)}}}$."
        )
    if kind == 3:
        m = 10 * c
        return (
            f"Compute the sum $\\sum_{{n=1}}^{{{m}}} ({a}n + {b})$.\n\nSplitting the sum, we get "
            f"${a} \\cdot \\frac{{{m}({m}+1)}}{{2}} + {b} \\cdot {m} = \\boxed{{{a * m * (m + 1) // 2 + b * m}}}$."
        )
    if kind == 4:
        sides = rng.choice([4, 6, 8, 10, 12, 20])
        target = rng.randint(2, sides)
        return (
            f"A fair {sides}-sided die is rolled. What is the probability that the result is at least "
            f"{target}? Express your answer as a common fraction.\n\nThere are {sides - target + 1} favorable "
            f"outcomes out of {sides}, so the probability is $\\boxed{{{_frac(sides - target + 1, sides)}}}$."
        )
    if kind == 5:
        p, q = 3 * a, 4 * a
        return (
            f"A right triangle has legs of length ${p}$ and ${q}$. Find its hypotenuse and its area.\n\n"
            f"By the Pythagorean theorem the hypotenuse is $\\sqrt{{{p}^2 + {q}^2}} = {5 * a}$, and the area "
            f"is $\\frac{{1}}{{2}} \\cdot {p} \\cdot {q} = \\boxed{{{_frac(p * q, 2)}}}$."
        )
    m = rng.randint(3, 13)
    y = Fraction(c * m - a, a + b)
    return (
        f"Let $x$ and $y$ be real numbers such that ${a}x + {b}y = {c * m}$ and $x - y = 1$. Find $x + y$."
        f"\n\nSubstituting $x = y + 1$ gives $({a} + {b})y = {c * m - a}$, so $y = {_frac(y.numerator, y.denominator)}$ "
        f"and $x + y = \\boxed{{{_frac((2 * y + 1).numerator, (2 * y + 1).denominator)}}}$."
    )


def _asy_preamble(rng: random.Random) -> list[str]:
    lines = [rng.choice(["unitsize(1 cm);", "unitsize(0.5 cm);", "size(150);", "size(6cm);", "size(120);"])]
    if rng.random() < 0.4:
        lines.insert(0, rng.choice(["import olympiad;", "import geometry;", "import graph;"]))
    if rng.random() < 0.3:
        lines.append("defaultpen(linewidth(0.7));")
    return lines


def _figure_problem(rng: random.Random) -> str:
    """A geometry or graphing problem whose page draws its figure in Asymptote, as competition
    pages do, with the worked solution after it."""
    kind = rng.randrange(3)
    if kind == 0:  # right triangle with labelled legs
        k = rng.randint(1, 4)
        p, q = rng.choice([(3, 4), (5, 12), (8, 15), (6, 8), (7, 24)])
        p, q = p * k, q * k
        hyp = round((p * p + q * q) ** 0.5)
        names = rng.sample("ABCDEFPQRXYZ", 3)
        fig = _asy_preamble(rng) + [
            f"pair {', '.join(names)};",
            f"{names[0]} = (0,0);",
            f"{names[1]} = ({p},0);",
            f"{names[2]} = (0,{q});",
            f"draw({names[0]}--{names[1]}--{names[2]}--cycle);",
            f"draw(rightanglemark({names[1]},{names[0]},{names[2]},{rng.choice([10, 15, 20])}));",
            f'label("${names[0]}$", {names[0]}, SW);',
            f'label("${names[1]}$", {names[1]}, SE);',
            f'label("${names[2]}$", {names[2]}, N);',
            f'label("${p}$", ({names[0]} + {names[1]})/2, S);',
            f'label("${q}$", ({names[0]} + {names[2]})/2, W);',
        ]
        question = (
            f"In the diagram, $\\triangle {''.join(names)}$ is right-angled at ${names[0]}$. What is the "
            f"length of ${names[1]}{names[2]}$?"
        )
        solution = (
            f"By the Pythagorean theorem, ${names[1]}{names[2]} = \\sqrt{{{p}^2 + {q}^2}} = "
            f"\\sqrt{{{p * p + q * q}}} = \\boxed{{{hyp}}}$."
        )
    elif kind == 1:  # circle with an inscribed angle
        angle = rng.choice([30, 40, 50, 60, 70, 80])
        fig = _asy_preamble(rng) + [
            "pair O, A, B, C;",
            "O = (0,0);",
            f"A = dir({rng.randint(100, 170)});",
            "B = dir(-30);",
            f"C = dir({rng.randint(190, 260)});",
            "draw(Circle(O,1));",
            "draw(A--B--C--A);",
            "draw(O--B);",
            "dot(O);",
            'label("$O$", O, NE);',
            'label("$A$", A, NW);',
            'label("$B$", B, E);',
            'label("$C$", C, SW);',
        ]
        question = (
            f"Points $A$, $B$ and $C$ lie on the circle centered at $O$, as shown, and "
            f"$\\angle ACB = {angle}^\\circ$. Find $\\angle AOB$ in degrees."
        )
        solution = (
            f"An inscribed angle is half of the central angle on the same arc, so "
            f"$\\angle AOB = 2 \\cdot {angle}^\\circ = \\boxed{{{2 * angle}}}$."
        )
    else:  # the graph of a line
        m, b = rng.randint(-3, 3) or 1, rng.randint(-4, 4)
        lo, hi = -rng.randint(3, 6), rng.randint(3, 6)
        fig = [
            "import graph;",
            rng.choice(["size(7cm);", "size(200);"]),
            f"real f(real x) {{ return {m}*x + ({b}); }}",
            f'xaxis("$x$", {lo}, {hi}, Ticks(Step=1), Arrows(6));',
            f'yaxis("$y$", {lo}, {hi}, Ticks(Step=1), Arrows(6));',
            f"draw(graph(f, {max(lo, (lo - b) / m if m > 0 else (hi - b) / m):.2f}, "
            f"{min(hi, (hi - b) / m if m > 0 else (lo - b) / m):.2f}), red);",
        ]
        question = (
            f"The graph of $y = {_poly([m, b])}$ is shown below. At what value of $x$ does it cross "
            f"the $x$-axis?"
        )
        solution = f"Setting $y = 0$ gives ${_poly([m, 0])} = {-b}$, so $x = \\boxed{{{_frac(-b, m)}}}$."
    figure = "[asy]\n" + "\n".join(fig) + "\n[/asy]"
    if rng.random() < 0.5:
        return f"{question}\n\n{figure}\n\nSolution: {solution}"
    return f"{question}\n\nSolution: We draw the figure: {figure} {solution}"


def math_text(n: int = 500, seed: int = 0, figure_share: float = 0.2) -> Iterator[dict]:
    """Worked math problems: LaTeX ones and reasoning-gym ones, three or four per page."""
    import reasoning_gym

    rng = random.Random(seed)
    gym = []
    for i, family in enumerate(_RG_FAMILIES):
        try:
            gym += [
                f"Problem: {e['question']}\nAnswer: {e['answer']}"
                for e in reasoning_gym.create_dataset(family, size=max(4, n // 16), seed=seed + i)
            ]
        except Exception:  # noqa: BLE001 - a family missing from this reasoning-gym version is skipped
            continue
    rng.shuffle(gym)
    for d in range(n):
        parts = [
            _figure_problem(rng) if rng.random() < figure_share else _latex_problem(rng)
            for _ in range(rng.randint(1, 3))
        ]
        if gym:
            parts.append(gym[d % len(gym)])
        rng.shuffle(parts)
        yield {
            "id": f"seed-math/{seed}/{d}",
            "text": "\n\n".join(parts),
            "url": f"seed://math/{d}",
            "metadata": {"domain": "math", "source": "curate:math_text"},
        }


def _dependency_sources() -> set[Path]:
    """The .py files of the distributions infir requires (no extras), test folders and files left
    out; every file of site-packages when infir is not installed (a source checkout on sys.path)."""
    from importlib.metadata import PackageNotFoundError, distribution, requires

    try:
        required = [r for r in requires("infir") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return _site_package_sources()
    found = set()
    for requirement in required:
        name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        found.update(
            Path(dist.locate_file(f))
            for f in dist.files or []
            if f.suffix == ".py" and "test" not in str(f).lower() and "__pycache__" not in f.parts
        )
    return found


def _site_package_sources() -> set[Path]:
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    found = set()
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if "test" not in d.lower() and d != "__pycache__"]
            found.update(
                Path(folder, name) for name in names if name.endswith(".py") and "test" not in name.lower()
            )
    return found


def python_code(n: int = 500, seed: int = 0, max_chars: int = 12_000) -> Iterator[dict]:
    """Python files of infir's required packages (site-packages holds no standard library), test
    folders left out; in the same order on every machine with the same pinned versions."""
    files = sorted(_dependency_sources(), key=_relative_to_site_packages)
    random.Random(seed).shuffle(files)
    count = 0
    for path in files:
        if count >= n:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) < 500:
            continue
        yield {
            "id": f"seed-code/{path.name}/{count}",
            "text": text[:max_chars],
            "url": f"seed://code/{path.name}",
            "metadata": {"domain": "code", "source": "curate:python_code"},
        }
        count += 1


def _relative_to_site_packages(path: Path) -> str:
    """A file's place inside site-packages: the order does not depend on where the venv lives."""
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(marker) :])
    return str(path)


GENERATORS: dict[str, Callable[..., Iterator[dict]]] = {
    "curate:math_text": math_text,
    "curate:python_code": python_code,
}


def iter_named(name: str, **kwargs) -> Iterator[dict]:
    if name in GENERATORS:
        return GENERATORS[name](**kwargs)
    from infir.data.builtin import iter_builtin

    return iter_builtin(name, **kwargs)
