"""peft (0.21) reads transformers' deprecated `is_gradient_checkpointing` whenever it wraps a model
(`get_peft_model`, `PeftModel.from_pretrained`): a FutureWarning that reached users on every fine-tune,
eval and `ask` of a LoRA version. The call is peft's, not ours; this silences that one message where we
call peft, and nothing else (tests/test_no_library_warnings.py)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager


@contextmanager
def peft_quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
