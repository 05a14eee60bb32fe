from __future__ import annotations

import pytest

from tests.rl.helpers import build_chat_model


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory):
    return build_chat_model(tmp_path_factory.mktemp("rl-chat-model"))
