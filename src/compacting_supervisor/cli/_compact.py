"""The ``compact`` command: summarise a thread's oldest messages now, or say what would change.

It picks the summariser ``--model`` names (the offline extractive one by default), sizes
the running summary, and writes one new head checkpoint through `HistoryManager` while
holding the thread's lock; ``--dry-run`` summarises the same way and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import SecretStr

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._messages import is_summary
from compacting_supervisor.cli._commands import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    _open_thread,
    _tokens,
)
from compacting_supervisor.cli._output import _compact_report, _print_json, _Progress
from compacting_supervisor.cli._stores import ThreadHead, open_store
from compacting_supervisor.errors import (
    CheckpointerError,
    CompactionError,
    NoReductionError,
    SummarizationError,
    ThreadBusyError,
)
from compacting_supervisor.history_manager import DEFAULT_MAX_SUMMARY_TOKENS, HistoryManager
from compacting_supervisor.locks import ThreadLockTimeoutError, locks_for
from compacting_supervisor.summarizers import ExtractiveSummarizer, resolve_chat_model
from compacting_supervisor.token_counter import TokenCounter

OFFLINE = "the offline extractive summariser"


def _cmd_compact(args: argparse.Namespace) -> int:
    summariser, label = _summariser(args.model, args.base_url)
    counter = TokenCounter()
    with (
        open_store(args.db, read_only=args.dry_run) as store,
        _Progress(args.progress) as progress,
    ):
        _, head, messages = _open_thread(store, args.thread, args.messages_key)
        tokens = _tokens(messages, counter)
        manager = HistoryManager(
            memory_saver=store.saver,
            model=summariser,
            summary_timeout=args.timeout,
            summary_retries=args.retries,
            # Never below the running summary's own size: a manual compact must not
            # squeeze what earlier compactions kept.
            max_summary_tokens=args.max_summary_tokens
            or max(
                min(DEFAULT_MAX_SUMMARY_TOKENS, max(32, tokens // 4)),
                _summary_tokens(messages, counter),
            ),
            token_counter=counter,
            messages_key=args.messages_key,
        )
        progress.update(f"summarising with {label} ...", force=True)
        try:
            if args.dry_run:
                outcome = _dry_run(manager, args.thread, head, messages, args.ratio)
            else:
                with locks_for(store.saver).hold(args.thread, timeout=args.lock_timeout):
                    result = manager.compact_thread(
                        head_config(args.thread), compaction_ratio=args.ratio
                    )
                outcome = dataclasses.asdict(result) if result is not None else None
        except ThreadLockTimeoutError as exc:
            msg = (
                f"thread {args.thread!r} is in use by another run or compaction (waited "
                f"{exc.timeout:g} s); nothing was written. Try again later or raise "
                "--lock-timeout."
            )
            raise CliError(msg, EXIT_FAILURE) from exc
        except NoReductionError as exc:
            reason = (
                f"the summary would not shrink it ({exc.tokens_before:,} -> "
                f"{exc.tokens_after:,} tokens). Raise --ratio or lower --max-summary-tokens."
            )
            outcome = _skipped(args.thread, reason, tokens, len(messages))
        except SummarizationError as exc:
            msg = f"the summariser ({label}) failed: {exc} The history is unchanged."
            raise CliError(msg, EXIT_FAILURE) from exc
        except ThreadBusyError as exc:
            msg = (
                f"{exc} It is paused on an interrupt or stopped mid-step: resume or finish the "
                "run, then compact. The history is unchanged."
            )
            raise CliError(msg, EXIT_FAILURE) from exc
        except CheckpointerError as exc:  # the store refused the read or the write
            raise CliError(str(exc), EXIT_FAILURE) from exc
        except CompactionError as exc:  # a run moved the thread on, or it holds non-messages
            raise CliError(f"{exc} The history is unchanged.", EXIT_FAILURE) from exc
    if outcome is None:
        reason = (
            f"nothing to compact: there is no safe place to cut its {len(messages)} "
            "message(s) (the latest user message and what follows it always stay)."
        )
        outcome = _skipped(args.thread, reason, tokens, len(messages))
    outcome.update(dry_run=args.dry_run, summariser=label, database=store.name)
    if args.json:
        _print_json(outcome)
    else:
        print(_compact_report(outcome))
    return EXIT_OK


# --------------------------------------------------------------------------- compaction


def _summariser(model: str | None, base_url: str | None) -> tuple[Any, str]:
    """The summariser ``--model`` names and how to call it in messages."""
    if model is None:
        if base_url:
            msg = "--base-url needs a model: add --model openai:<model>."
            raise CliError(msg)
        # Chosen explicitly, so the "an LLM summarises better" hint stays quiet.
        return ExtractiveSummarizer(), OFFLINE
    provider, _, name = model.partition(":")
    if not provider or not name:
        msg = f"--model must be PROVIDER:MODEL, e.g. openai:gpt-4o-mini, got {model!r}."
        raise CliError(msg)
    label = f"{model} at {base_url}" if base_url else model
    try:
        chat: BaseChatModel
        if provider == "openai":
            from langchain_openai import ChatOpenAI

            if base_url:  # local servers usually ignore the key, but the client wants one
                key = SecretStr(os.environ.get("OPENAI_API_KEY", "not-needed"))
                chat = ChatOpenAI(model=name, base_url=base_url, api_key=key)
            else:
                chat = ChatOpenAI(model=name)
        elif base_url:
            from langchain.chat_models import init_chat_model

            chat = init_chat_model(model, base_url=base_url)
        else:
            chat = resolve_chat_model(model)
    except Exception as exc:  # a missing key or package: the provider's own message
        hint = " Set OPENAI_API_KEY, or pass --base-url." if provider == "openai" else ""
        msg = f"cannot set up the model {model!r}: {exc}{hint}"
        raise CliError(msg) from exc
    return chat, label


def _summary_tokens(messages: list[BaseMessage], counter: TokenCounter) -> int:
    """Tokens of the running summary at the top of ``messages`` (0 if there is none)."""
    return next((counter.count_text(m.text) for m in messages if is_summary(m)), 0)


def _dry_run(
    manager: HistoryManager, thread_id: str, head: ThreadHead, messages: list[Any], ratio: float
) -> dict[str, Any] | None:
    started = time.perf_counter()
    compaction = manager.compact_messages(messages, compaction_ratio=ratio)
    if compaction is None:
        return None
    before = manager.token_counter.count(messages)
    after = manager.token_counter.count(compaction.messages)
    if after >= before:  # what compact_thread refuses to write
        msg = "The summary would not shrink the thread."
        raise NoReductionError(msg, thread_id=thread_id, tokens_before=before, tokens_after=after)
    return {
        "thread_id": thread_id,
        "status": "dry_run",
        "tokens_before": before,
        "tokens_after": after,
        "messages_before": len(messages),
        "messages_after": len(compaction.messages),
        "messages_summarized": len(compaction.summarized),
        "previous_checkpoint_id": head.checkpoint_id,
        "checkpoint_id": None,
        "summary": compaction.summary,
        "duration": time.perf_counter() - started,
    }


def _skipped(thread_id: str, reason: str, tokens: int, count: int) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "status": "skipped",
        "tokens_before": tokens,
        "tokens_after": tokens,
        "messages_before": count,
        "messages_after": count,
        "messages_summarized": 0,
        "checkpoint_id": None,
        "error": reason,
    }
