"""Redaction holds: secrets under their keys, after decoding, in every field of a message.

Issue 18, part 2. Each test names what reached the summariser before: a tool call
``login(username="bob", password="Zq9xLm2Pw7Rt")``, JSON with escaped slashes, raw
``additional_kwargs``, a tool message's artifact ... The measured figures on data not
written here are in ``tests/test_redaction_corpus.py`` and ``benchmarks/redaction.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from compacting_supervisor import (
    CompactingSupervisor,
    CompactionError,
    HistoryManager,
    Redactor,
    redact_personal_data,
    redact_secrets,
    redact_text,
    redact_with,
)
from compacting_supervisor._messages import is_summary
from compacting_supervisor.context import render_messages
from compacting_supervisor.testing import ScriptedChatModel
from tests.helpers import chat_graph

CONFIG = {"configurable": {"thread_id": "r"}}
PASSWORD = "Zq9xLm2Pw7Rt"


def _login_call(**args: Any) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "login", "args": args, "id": "call_login"}])


# ------------------------------------------------------------------ the example


def test_a_login_tool_call_never_reaches_the_summariser(saver: Any) -> None:
    """Found in review: the password of ``login(username="bob", password=...)`` reached the
    summariser, the stored summary and the INFO log, with every default."""
    model = ScriptedChatModel(responses=["The user logged in as bob."])
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model), token_limit=100_000
    )
    supervisor.invoke(
        {
            "messages": [
                HumanMessage("log me in"),
                _login_call(username="bob", password=PASSWORD),
                ToolMessage("ok", tool_call_id="call_login", name="login"),
            ]
        },
        CONFIG,
    )
    for i in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
    supervisor.compact(CONFIG)
    assert PASSWORD not in str(model.calls)
    assert "bob" in str(model.calls)
    assert "[REDACTED:secret]" in str(model.calls)
    assert is_summary(supervisor.get_state(CONFIG).values["messages"][0])


def test_the_login_call_is_redacted_in_the_message_and_in_what_the_summariser_reads() -> None:
    message = _login_call(username="bob", password=PASSWORD)
    redacted = redact_secrets(message)
    assert redacted.tool_calls[0]["args"] == {"username": "bob", "password": "[REDACTED:secret]"}
    assert PASSWORD not in render_messages([redacted])
    assert message.tool_calls[0]["args"]["password"] == PASSWORD  # the original is intact


# ------------------------------------------------------------------ keys of every shape

SECRET_KEYS = [
    "password", "passwd", "pwd", "passphrase", "secret", "token", "api_key", "apikey",
    "apiKey", "API_KEY", "api-key", "X-Api-Key", "x-api-key", "client_secret", "clientSecret",
    "private_key", "privateKey", "access_token", "accessToken", "auth", "authorization",
    "Authorization", "credentials", "cookie", "Set-Cookie", "session_token", "sessionId",
    "db_password", "DB_PASSWORD", "dbPassword", "db-password", "GITHUB_TOKEN", "refreshToken",
    "aws_secret_access_key", "smtp.password", "PassWord", "Client-Secret", "client.secret",
    "ACCESS.TOKEN", "Pass.Word", "to-ken", "sec.ret", "TO_KEN", "TO__KEN", "api.Key",
]  # fmt: skip
# A plain word, a number-free phrase, a key-like string: the key decides, not the value.
VALUES = ["hunter2pass", "Zq9xLm2Pw7Rt", "correct horse battery staple"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_values_under_secret_keys_are_redacted_in_tool_call_arguments(key: str) -> None:
    for value in VALUES:
        if key in ("pwd", "auth") and " " in value:
            continue  # weak keys: a credential-like value only (see NOT_SECRET)
        message = _login_call(user="bob", options={"nested": [{key: value}]})
        assert value not in str(redact_secrets(message).tool_calls), (key, value)


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize(
    "form",
    [
        '{{"user": "bob", "{key}": "{value}"}}',  # JSON
        '{{\n  "data": {{"{key}": "{value}", "n": 1}}\n}}',  # nested JSON
        "user: bob\n{key}: {value}\nport: 5432",  # YAML
        "  - {key}: '{value}'",  # YAML list item
        "{key}={value}",  # .env, query strings, kwargs
        'login(user="bob", {key}="{value}")',  # a call
        "export {key}='{value}'",  # shell
        "{key}: {value}",  # a header line
        "<{key}>{value}</{key}>",  # XML
        "curl -H '{key}: {value}' https://api.example.com",  # a header in a command
        'headers = {{"{key}": "{value}"}}; send(headers)',  # JSON-like inside code
    ],
)
def test_values_under_secret_keys_are_redacted_in_text(key: str, form: str) -> None:
    value = "Zq9xLm2Pw7Rt"
    text = form.format(key=key, value=value)
    assert value not in redact_text(text), text


def test_http_headers_and_their_auth_schemes() -> None:
    text = (
        "GET /v1/me HTTP/1.1\nHost: api.example.com\nAuthorization: Basic dXNlcjpwYXNz\n"
        "Cookie: sessionid=abc; csrftoken=def\nX-Api-Key: plainword\nAccept: */*"
    )
    redacted = redact_text(text)
    for secret in ("dXNlcjpwYXNz", "sessionid=abc", "plainword"):
        assert secret not in redacted
    assert "Authorization: Basic [REDACTED:" in redacted
    assert "Host: api.example.com" in redacted and "Accept: */*" in redacted
    curl = 'curl -H "Authorization: Bearer plain" -H "apikey: c4ed6c21" https://x.example'
    assert "plain" not in redact_text(curl).replace("[REDACTED", "")
    assert "c4ed6c21" not in redact_text(curl)


NOT_SECRET = [
    "token_count: 12",
    "max_tokens=500",
    "input_tokens: 830",
    "password_reset_url: https://example.com/account/reset",
    "secret_santa: Ana",
    "secret_name: api-creds",
    "passwordVariable: 'PASSWORD'",
    "next_page_token: null",
    "public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB",
    "eos_token: </s>",
    "auth: true",
    "pwd=/home/me",
    "password: ${DB_PASSWORD}",
    "api_key = os.environ['API_KEY']",
    "token = get_token()",
    "password = getpass.getpass()",
    "secret: <your secret here>",
    "api_key: xxxxxxxxxxxxxxxxxxxx",
    "The secret: always be kind.",
    "Keep the token: it is short-lived.",
    'primary_key = "id"',
    "session_timeout: 3600",
    "key: value",
    # fakes in a key format (gitleaks' false-positive examples): under a secret-bearing
    # key, any value but a placeholder is redacted, so these stand on their own
    "12345678-ABCD-ABCD-ABCD-1234567890AB is the docs' token",
    "the docs' key AKIAIOSFODNN7EXAMPLE",
    "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
    "xoxe.xoxp-1-RANDOMSTRINGHERE",
    "ntn_123456789012345678901234567890123456789012345678901234567890",
    "sgp_5555555dAAAAA7777777CcccCFaaaaaaaaaaaaaa",
    '"token4": "xoxp-572370529330-573807301142-572331691188-####################"',
    "AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",  # Firebase's published sample key
]


@pytest.mark.parametrize("text", NOT_SECRET)
def test_keys_about_secrets_and_placeholders_keep_their_value(text: str) -> None:
    """The judgement calls: a key that ends in another word (``token_count``,
    ``password_reset_url``) is about the secret; a placeholder holds none; a colon in prose
    is prose. Documented in ``compacting_supervisor.redaction._keys``."""
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "password: abcd1234",  # under a secret-bearing key, counting runs are a value too
        "api_token = 12345678-ABCD-ABCD-ABCD-1234567890AB",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_access_key: AKIAZ7RQ4M2XK9PLBT3W",
        "sk-ant-api03-" + "Zq9xLm2Pw7Rt_k4V-" * 5 + "Zq9xLm2PAA",  # 93 characters, then AA
        "xoxb-572370529330-573807301142-Ab3dE5gH7jK9mN1pQ3sT5vW7",
        "sgp_0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6",
        "-----BEGIN PRIVATE KEY-----\n"
        + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" * 3
        + "\n-----END PRIVATE KEY-----",
    ],
)
def test_real_looking_keys_and_chosen_passwords_are_still_redacted(text: str) -> None:
    """The rules for fakes in a key format (counting runs, ``EXAMPLE``, few distinct
    characters, a PEM body that is a word) leave real-looking keys alone, and a value
    under a secret-bearing key is judged by its key: ``abcd1234`` is a password too."""
    redacted = redact_text(text)
    assert redacted != text and "[REDACTED" in redacted, redacted


def test_json_values_under_a_secret_key_are_redacted_whole() -> None:
    payload = {"credentials": {"user": "bob", "password": "x7pass", "pin": 1234}, "n": 3}
    redacted = json.loads(redact_text(json.dumps(payload)))
    assert redacted == {
        "credentials": {"user": "[REDACTED:secret]", "password": "[REDACTED:secret]", "pin": "[REDACTED:secret]"},
        "n": 3,
    }  # fmt: skip


# ------------------------------------------------------------------ encodings


def test_json_with_escaped_slashes_is_redacted_after_decoding() -> None:
    """Found in review: ``postgres:\\/\\/billing:Hunter2pass@db`` passed, then the renderer
    decoded it for the summariser."""
    result = '{"dsn": "postgres:\\/\\/billing:Hunter2pass@db\\/prod"}'
    message = ToolMessage(result, tool_call_id="c1", name="config")
    redacted = redact_secrets(message)
    assert "Hunter2pass" not in str(redacted.content)
    assert "Hunter2pass" not in render_messages([redacted])
    assert "billing" in render_messages([redacted])


def test_unicode_escapes_in_json_and_in_text_are_decoded_before_matching() -> None:
    key_escaped = '{"\\u0070assword": "plainvalue"}'  # "password", spelt with \u0070
    assert "plainvalue" not in redact_text(key_escaped)
    in_text = "connect with postgres:\\u002f\\u002fbob:Hunter2pass@db"
    assert "Hunter2pass" not in redact_text(in_text)
    escaped_json_in_text = 'log: {\\"password\\": \\"plainvalue\\"}'
    assert "plainvalue" not in redact_text(escaped_json_in_text)


def test_json_inside_a_json_string_is_read_too() -> None:
    inner = json.dumps({"api_key": "plainvalue"})
    outer = json.dumps({"body": inner, "status": 200})
    assert "plainvalue" not in redact_text(outer)


def test_percent_encoded_urls_and_base64_basic_auth() -> None:
    encoded = "callback=https%3A%2F%2Fbob%3AHunter2pass%40db.example.com%2Fx"
    assert "Hunter2pass" not in redact_text(encoded)
    # base64("user:pass") has no digit; it is redacted because it decodes to user:password
    assert "dXNlcjpwYXNz" not in redact_text("send it with Basic dXNlcjpwYXNz please")
    # ... and "Basic" followed by a word that is not base64 of a credential stays
    assert redact_text("Basic principles apply.") == "Basic principles apply."


def test_text_without_secrets_is_returned_as_it_is_even_with_escapes() -> None:
    for text in ("path C:\\/temp and \\u00e9t\\u00e9", '{"a": "\\u00e9"}', "50%25 off"):
        assert redact_text(text) is text


# ------------------------------------------------------------------ every field


def _secret_everywhere() -> list[BaseMessage]:
    arguments = json.dumps({"username": "bob", "password": PASSWORD})
    return [
        HumanMessage(f"my password={PASSWORD}"),
        HumanMessage(
            [
                {"type": "text", "text": f"token: {PASSWORD}"},
                {"type": "image_url", "image_url": {"url": f"https://bob:{PASSWORD}@img.example/x.png"}},
                {"type": "reasoning", "reasoning": f"api_key={PASSWORD}", "summary": [{"type": "summary_text", "text": f"password={PASSWORD}"}]},
            ]
        ),
        AIMessage(
            [
                {"type": "text", "text": "logging in"},
                {"type": "tool_use", "id": "t1", "name": "login", "input": {"password": PASSWORD}},
            ],
            tool_calls=[{"name": "login", "args": {"password": PASSWORD}, "id": "t1"}],
            additional_kwargs={
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "login", "arguments": arguments}}],
                "function_call": {"name": "login", "arguments": arguments},
            },
            invalid_tool_calls=[{"name": "login", "args": arguments[:-1], "id": "t2", "error": "bad json", "type": "invalid_tool_call"}],
        ),
        ToolMessage(
            [{"type": "tool_result", "tool_use_id": "t1", "content": f"session_token={PASSWORD}"}],
            tool_call_id="t1",
            name="login",
            artifact={"raw": [("cookie", PASSWORD)], "headers": {"Set-Cookie": f"sid={PASSWORD}"}},
        ),
    ]  # fmt: skip


def test_every_field_a_message_carries_text_in_is_redacted() -> None:
    messages = _secret_everywhere()
    originals = copy.deepcopy(messages)
    for message in messages:
        redacted = redact_secrets(message)
        assert redacted is not message
        fields = redacted.model_dump(exclude={"response_metadata"})
        assert PASSWORD not in str(fields), type(message).__name__
    assert messages == originals  # never mutated
    assert PASSWORD not in render_messages([redact_secrets(m) for m in messages])


def test_the_artifact_keeps_its_shape() -> None:
    tool = _secret_everywhere()[-1]
    redacted = redact_secrets(tool)
    assert isinstance(redacted, ToolMessage)
    assert redacted.artifact["raw"] == [("cookie", "[REDACTED:secret]")]
    assert isinstance(redacted.artifact["raw"][0], tuple)


def test_response_metadata_is_not_sent_and_is_left_alone() -> None:
    message = AIMessage("hello", response_metadata={"debug": f"password={PASSWORD}"})
    assert redact_secrets(message) is message
    assert PASSWORD not in render_messages([message])


def test_a_message_with_nothing_to_redact_is_returned_as_it_is() -> None:
    for message in (
        HumanMessage("Where is order 42?"),
        _login_call(order_id=42, city="Paris"),
        ToolMessage('{"status": "shipped", "token_count": 12}', tool_call_id="c", name="x"),
        AIMessage([{"type": "text", "text": "done"}], additional_kwargs={"refusal": None}),
    ):
        assert redact_secrets(message) is message


# ------------------------------------------------------------------ personal data


def test_personal_data_is_kept_by_default_and_redacted_on_request() -> None:
    text = "Refund card 4111 1111 1111 1111 for alice@example.com, IBAN DE89 3704 0044 0532 0130 00, call +44 20 7946 0958"
    assert redact_text(text) == text
    redacted = redact_text(text, personal_data=True)
    assert redacted == (
        "Refund card [REDACTED:card] for [REDACTED:email], IBAN [REDACTED:iban], call "
        "[REDACTED:phone]"
    )
    message = HumanMessage(text)
    assert redact_secrets(message) is message
    assert "alice" not in str(redact_personal_data(message).content)


def test_numbers_failing_their_checksums_are_not_personal_data() -> None:
    text = "order 4111 1111 1111 1112 and IBAN DE88 3704 0044 0532 0130 00"
    assert redact_text(text, personal_data=True) == text


# ------------------------------------------------------------------ other engines


class _HideNames:
    def redact(self, text: str) -> str:
        return text.replace("Alice", "[NAME]")


class _Boom:
    def redact(self, text: str) -> str:
        raise RuntimeError("engine down")


def test_a_redactor_plugs_in_on_top_of_the_built_in_rules() -> None:
    assert isinstance(_HideNames(), Redactor)
    hook = redact_with(_HideNames())
    message = _login_call(note="Alice asked", password=PASSWORD)
    redacted = hook(message)
    assert redacted.tool_calls[0]["args"] == {
        "note": "[NAME] asked",
        "password": "[REDACTED:secret]",
    }
    assert hook(HumanMessage("Alice")).content == "[NAME]"
    assert redact_with(personal_data=True)(HumanMessage("a@b.org")).content == "[REDACTED:email]"


def test_a_redactor_sees_decoded_json_values() -> None:
    seen: list[str] = []

    class Spy:
        def redact(self, text: str) -> str:
            seen.append(text)
            return text

    redact_with(Spy())(ToolMessage('{"note": "caf\\u00e9 \\/ bar"}', tool_call_id="c"))
    assert "café / bar" in seen


@pytest.mark.parametrize("bad", [object(), "redact", lambda text: text])
def test_redact_with_refuses_what_is_not_a_redactor(bad: Any) -> None:
    with pytest.raises(TypeError, match="`redactors`"):
        redact_with(bad)


def test_a_redactor_returning_something_else_than_text_fails_closed() -> None:
    class Bad:
        def redact(self, text: str) -> Any:
            return None

    with pytest.raises(CompactionError, match="returned NoneType"):
        redact_with(Bad())(HumanMessage("hello"))


def _over_limit_turns(supervisor: CompactingSupervisor) -> None:
    for i in range(8):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i} password={PASSWORD}")]}, CONFIG)
        if supervisor.last_compaction(CONFIG) is not None:
            return


def test_a_redactor_that_raises_fails_the_compaction_and_keeps_the_history(saver: Any) -> None:
    model = ScriptedChatModel(responses=["The user sent a few turns; the agent noted each one."])
    history = HistoryManager(model=model, redact=redact_with(_Boom()))
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=150)
    _over_limit_turns(supervisor)
    result = supervisor.last_compaction(CONFIG)
    assert result is not None
    assert result.status == "failed"
    assert "engine down" in str(result.error)
    assert model.calls == []  # nothing reached the summariser
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert not any(is_summary(m) for m in messages)
    assert [m.content for m in messages if isinstance(m, HumanMessage)] == [
        f"turn {i} password={PASSWORD}" for i in range(len(messages) // 2)
    ]
    before = supervisor.get_state(CONFIG).values["messages"]
    with pytest.raises(CompactionError, match="engine down"):
        supervisor.compact(CONFIG)
    assert supervisor.last_compaction(CONFIG).status == "failed"
    assert supervisor.get_state(CONFIG).values["messages"] == before


async def test_a_redactor_that_raises_fails_the_async_compaction_too(asaver: Any) -> None:
    model = ScriptedChatModel(responses=["The user sent a few turns; the agent noted each one."])
    history = HistoryManager(model=model, redact=redact_with(_Boom()))
    supervisor = CompactingSupervisor(chat_graph(asaver), history, token_limit=150)
    for i in range(8):
        await supervisor.ainvoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
        if supervisor.last_compaction(CONFIG) is not None:
            break
    result = supervisor.last_compaction(CONFIG)
    assert result is not None
    assert result.status == "failed"
    assert model.calls == []
    before = (await supervisor.aget_state(CONFIG)).values["messages"]
    assert not any(is_summary(m) for m in before)
    with pytest.raises(CompactionError, match="engine down"):
        await supervisor.acompact(CONFIG)
    assert (await supervisor.aget_state(CONFIG)).values["messages"] == before


# ------------------------------------------------------------------ detect-secrets


def _detect_secrets() -> Any:
    pytest.importorskip(
        "detect_secrets",
        reason="detect-secrets is not installed (pip install detect-secrets, the `redaction` extra)",
    )
    from compacting_supervisor.redaction.detect_secrets import DetectSecretsRedactor

    return DetectSecretsRedactor()


def test_the_detect_secrets_adapter_redacts_what_it_finds() -> None:
    redactor = _detect_secrets()
    assert isinstance(redactor, Redactor)
    text = 'aws = "AKIAIOSFODNN7EXAMPLE"\nhello world'
    assert redactor.redact(text) == 'aws = "[REDACTED:aws-access-key]"\nhello world'
    assert redactor.redact("nothing to see") == "nothing to see"


def test_the_detect_secrets_adapter_plugs_into_a_compaction(saver: Any) -> None:
    redactor = _detect_secrets()
    model = ScriptedChatModel(
        responses=["The user sent four short turns; the agent noted each one."]
    )
    history = HistoryManager(model=model, redact=redact_with(redactor))
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=100_000)
    secret = "8d6f3a2b9c1e4f7a0b5c8d2e6f9a3b7c"  # a high-entropy hex string, no key around it
    supervisor.invoke({"messages": [HumanMessage(f'the checksum is "{secret}" ok')]}, CONFIG)
    for i in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
    supervisor.compact(CONFIG)
    assert secret not in str(model.calls)


def test_the_detect_secrets_adapter_checks_its_setting() -> None:
    pytest.importorskip("detect_secrets", reason="detect-secrets is not installed")
    from compacting_supervisor.redaction.detect_secrets import DetectSecretsRedactor

    with pytest.raises(ValueError, match="`min_length`"):
        DetectSecretsRedactor(min_length=0)


# ------------------------------------------------------------------ the quick pre-check

_NEW_TRIGGERS = [
    "db_password=", "dbPassword: ", "X-Api-Key: ", '"apiKey": "', "<password>", "Cookie: ",
    "curl -u bob:", 'curl -H "Token: ', "hf_", "glpat-", "AGE-SECRET-KEY-1", "hooks.slack.com/services/",
    "Basic ", "xoxb-1234-", "ntn_", "%3A%2F%2Fbob%3A", "\\/\\/bob:", "\\u0070assword=", "sessionId=",
    "PassWord=", "client-secret: ", "2Vq7Q~", "EAA", "dapi", "to-ken=", '"sec.ret": "', "TO__KEN: ",
    "sk-ant-api03-", "sgp_", "xoxp-1-", "EXAMPLE", "-----BEGIN PRIVATE KEY-----",
]  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(_NEW_TRIGGERS)
        | st.sampled_from(
            ["Zq9xLm2Pw7Rt", "abc123XYZ789def456ghi012jkl345" * 2, " ", "\n", "@db", '"']
        )
        | st.text(max_size=10),
        max_size=8,
    )
)
def test_the_needles_never_skip_what_a_pattern_would_change(parts: list[str]) -> None:
    """Each pattern runs only on text holding one of its needles; running every pattern on
    every text gives the same result."""
    from compacting_supervisor.redaction._rules import PATTERNS, scan_secrets

    text = "".join(parts)
    slow = text
    for _, pattern, replacement in PATTERNS:
        slow = pattern.sub(replacement, slow)
    assert scan_secrets(text) == slow


# ------------------------------------------------------------------ the cheaper paths

_URL_AND_AUTH_PARTS = [
    "https://", "postgres://", "bob", ":", "@", "/", "db", " ", "\t", "\u00df", "Bearer",
    "basic", "TOKEN", "token_count", "Zq9xLm2Pw7Rt", "abc123XYZ789def456", "a" * 210,
    '"', "'", "Authorization", "X-Api-Key", "<password>", "</password>", "<", ">", "\n",
]  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_URL_AND_AUTH_PARTS) | st.text(max_size=6), max_size=10))
def test_the_shape_checks_never_skip_what_a_pattern_would_change(parts: list[str]) -> None:
    """The URL-password, HTTP-auth, header and XML rules run only on text of their shape
    (``://user:pw@``, ``bearer`` and a space, a quote, ``</``); running every pattern on
    every text gives the same result."""
    from compacting_supervisor.redaction._rules import PATTERNS, scan_secrets

    text = "".join(parts)
    slow = text
    for _, pattern, replacement in PATTERNS:
        slow = pattern.sub(replacement, slow)
    assert scan_secrets(text) == slow


_JSON_WORDS = st.sampled_from(
    ["password", "api_key", "token_count", "next_page_token", "sk-", "https://a.b/c", "bob",
     "x:y@z", "Bearer ", "secret", "[", " ", "k", "gh", "pass word", "Zq9xLm2Pw7Rt",
     "-----BEGIN PRIVATE KEY-----", "<", ">", "to!ken", "se/cret", "toke|n"]
)  # fmt: skip
_JSON_STRINGS = st.lists(_JSON_WORDS, max_size=4).map("".join)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 10**6) | _JSON_STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_STRINGS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_JSON_VALUES, st.sampled_from([None, 2]))
def test_json_with_nothing_to_redact_is_told_apart_without_walking_it(
    value: Any, indent: Any
) -> None:
    """A JSON text's quick check (its keys, then its strings scanned as one text, a line
    each) says "nothing to redact" only when walking the value redacts nothing, and the
    narrowed scan skips only strings holding no needle of the text."""
    from compacting_supervisor.redaction._rules import scan_secrets
    from compacting_supervisor.redaction._structure import (
        _Narrowed,
        _nothing_to_redact,
        redact_structure,
    )

    text = json.dumps(value, indent=indent)
    plain = "\\" not in text and "%" not in text
    if isinstance(value, dict | list) and plain and _nothing_to_redact(value):
        assert redact_structure(value, scan_secrets) is value
        assert redact_text(text) == text
    narrowed = _Narrowed(text)
    for leaf in _strings(value):
        if narrowed.skip(leaf):
            assert scan_secrets(leaf) == leaf


def test_json_text_with_a_key_header_cut_across_strings_is_redacted_as_walked() -> None:
    """A PEM header and a short body in one string, the next string closing what, joined,
    reads as a placeholder (``<keyX`` ... ``foo>``): the quick check of JSON text must leave
    it to the walk, which redacts the string as it would anywhere else."""
    from compacting_supervisor.redaction._rules import scan_secrets
    from compacting_supervisor.redaction._structure import redact_structure

    value = ["-----BEGIN PRIVATE KEY-----<keyX", "foo>"]
    walked = redact_structure(value, scan_secrets)
    assert walked == ["[REDACTED:private-key]", "foo>"]
    assert json.loads(redact_text(json.dumps(value))) == walked


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for item in value.values() for s in _strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_tool_call_chunks_kept_as_an_extra_field_are_redacted() -> None:
    """An `AIMessage` has no ``tool_call_chunks`` field; given one, pydantic keeps it as an
    extra, and it is redacted like the field of an `AIMessageChunk`."""
    chunk = {"name": "login", "args": json.dumps({"password": PASSWORD}), "id": "c1", "index": 0}
    message = AIMessage("", tool_call_chunks=[chunk])
    assert PASSWORD not in str(redact_secrets(message).tool_call_chunks)  # type: ignore[attr-defined]
    assert PASSWORD in str(message.tool_call_chunks)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        '{"headers": [["Authorization", "Zq9xLm2Pw7Rt"]]}',
        '[\n  "password",\n  "Zq9xLm2Pw7Rt"\n]',
        '{"pairs": [ [ "api_key" , "Zq9xLm2Pw7Rt" ] ], "next_page_token": null}',
    ],
)
def test_a_name_value_pair_in_json_text_is_redacted(text: str) -> None:
    """A list opening with a secret-bearing name is a (name, value) pair, with or without
    whitespace after its ``[``: the JSON text's quick check must not pass it over."""
    assert PASSWORD not in redact_text(text)
    assert PASSWORD in text


# ------------------------------------------------------------------ keys and keys cut in JSON

_SPACED_KEYS = [
    "to ken",
    "to\u00e9ken",
    "Pass Word",
    "TO KEN",
    "sec ret",
    "api\u00a0key",
    "Access  Token",
]


def _tool_result(content: str) -> ToolMessage:
    return ToolMessage(content, tool_call_id="c1", name="fetch")


@pytest.mark.parametrize("key", _SPACED_KEYS)
@pytest.mark.parametrize("indent", [None, 2])
def test_a_secret_key_spelt_with_a_space_or_an_accent_in_json_text_is_redacted(
    key: str, indent: int | None
) -> None:
    """Found in review: JSON text whose only secret key is spelt with a space or an accent
    inside its word (``{"to ken": ...}``, ``{"to\u00e9ken": ...}``) holds none of the words
    the quick check looks for, and was passed over; walked, the key is secret-bearing."""
    text = json.dumps({"user": "bob", key: PASSWORD}, ensure_ascii=False, indent=indent)
    for message in (_tool_result(text), HumanMessage(text)):
        redacted = redact_secrets(message)
        assert PASSWORD not in str(redacted.content)
        assert PASSWORD not in render_messages([redacted])
        assert json.loads(str(redacted.content)) == {"user": "bob", key: "[REDACTED:secret]"}
    call = AIMessage("", tool_calls=[{"name": "post", "args": {"body": text}, "id": "c2"}])
    [redacted_call] = redact_secrets(call).tool_calls
    assert PASSWORD not in redacted_call["args"]["body"]
    assert PASSWORD in text  # the original is unchanged


@pytest.mark.parametrize("line", ["to\u00e9ken=", "TO\u00c9KEN: ", "Pass\u00e9Word = "])
def test_a_key_word_split_by_an_accent_in_text_is_a_key(line: str) -> None:
    """In text, a key's characters are word characters (an accented letter too), and
    `key_kind` reads ``to\u00e9ken`` as ``to`` ``ken``: the quick check must let it through."""
    assert redact_text(f"{line}{PASSWORD}\n") == f"{line}[REDACTED:secret]\n"


@pytest.mark.parametrize(
    "payload",
    [
        {"to kenya": PASSWORD},
        {"go to": "Kensington", "note": "a pass ed key"},
        {"back end": PASSWORD, "pass count": 3},
        ["to ken", "pass", "word"],
    ],
)
def test_json_keys_that_only_look_split_keep_their_values(payload: Any) -> None:
    """Keys whose words do not join into a credential noun stay as they are."""
    text = json.dumps(payload)
    assert redact_text(text) == text


_PEM_LINES = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAx4v1c3ZkRbN2fQ8sLmT0yP6aJkW9dHq3bV7nZ2xYcR5tUo1wK8pL",
    "mN4sD6fG3hJ9kQ2rT7vX1zA5cE8bV7nZ2xYcR5tUo1wK8pLmN4sD6fG3hJ9kQ2rT7vX",
    "1zA5cE8x4v1c3ZkRbN2fQ8sLmT0yP6aJkW9dHq3==",
    "-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize(
    "payload",
    [
        _PEM_LINES,
        {"path": "id_rsa", "lines": _PEM_LINES},
        {"files": [{"name": "key.pem", "lines": ["# deploy key", *_PEM_LINES, "# end"]}]},
        {"lines": _PEM_LINES[:3]},  # cut short: no END line
    ],
)
def test_a_private_key_whose_lines_are_the_strings_of_a_json_array_is_redacted(
    payload: Any,
) -> None:
    """Found in review: a PEM key read as a list of lines (one JSON string each) was
    scanned string by string; the header alone holds no key and the body lines hold no
    header, so the key reached the summariser. Its lines are now redacted as the text they
    form: one ``[REDACTED:private-key]`` in their place, the strings around them kept."""
    text = json.dumps(payload, indent=2)
    for message in (_tool_result(text), AIMessage("", tool_calls=[
        {"name": "write", "args": {"payload": payload}, "id": "c3"}
    ])):  # fmt: skip
        shown = render_messages([redact_secrets(message)])
        for line in _PEM_LINES[1:4]:
            assert line[:40] not in shown
        assert "[REDACTED:private-key]" in shown
    if isinstance(payload, dict) and "files" in payload:
        lines = json.loads(redact_text(text))["files"][0]["lines"]
        assert lines == ["# deploy key", "[REDACTED:private-key]", "# end"]


@pytest.mark.parametrize(
    "lines",
    [
        ["-----BEGIN PRIVATE KEY-----", "...", "-----END PRIVATE KEY-----"],
        ["-----BEGIN PRIVATE KEY-----", "<your key here>", "-----END PRIVATE KEY-----"],
        ["-----BEGIN PUBLIC KEY-----", *_PEM_LINES[1:4], "-----END PUBLIC KEY-----"],
        ["-----BEGIN CERTIFICATE-----", *_PEM_LINES[1:4], "-----END CERTIFICATE-----"],
    ],
)
def test_placeholder_keys_and_public_blocks_in_json_arrays_are_left(lines: list[str]) -> None:
    text = json.dumps({"lines": lines, "n": 1})
    assert redact_text(text) == text


# ------------------------------------------------------------------ high-entropy tokens (opt-in)

_RANDOM_TOKEN = "9Xq2LmZr7TpW4vKa8sDf1GhJ6yBn3CeU"


@pytest.mark.parametrize(
    "text",
    [
        f"here it is: {_RANDOM_TOKEN} (do not share)",
        f"the value is {_RANDOM_TOKEN}== ok",
        "the value is 3121770cd74440acffaae6de07614e67 ok",  # 32 hex digits, no hash word
        _RANDOM_TOKEN,
    ],
)
def test_a_high_entropy_redactor_hides_random_tokens_with_no_key(text: str) -> None:
    from compacting_supervisor.redaction import HighEntropyRedactor

    hook = redact_with(HighEntropyRedactor())
    assert "[REDACTED:high-entropy]" in str(hook(HumanMessage(text)).content)
    assert redact_text(text) == text  # not on by default


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f9a1c0e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 (HEAD -> main)",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Request 8c2f0e1a-5b7d-4c3e-9a1f-2d6b8e0c4a7f failed; trace id 0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6",
        f"See https://example.com/files/{_RANDOM_TOKEN}?page=2 for details.",
        f"public_key = {_RANDOM_TOKEN}",  # a named value: the key rules judge it by its name
        '{"sha": "00c71648147ee3438bc2f8e1f81167c817dfbd17", "n": 3}',
        "AKIAIOSFODNN7EXAMPLE and abcdefghijklmnopqrstuvwxyz0123456789 and xxxxxxxxxxxxxxxxxxxxxx1",
        "IBAN DE89370400440532013000, version 1.2.3-rc4",
        "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
        "src/compacting_supervisor/redaction/_rules.py and test_values_under_secret_keys",
    ],
)
def test_a_high_entropy_redactor_leaves_hashes_urls_names_and_placeholders(text: str) -> None:
    from compacting_supervisor.redaction import HighEntropyRedactor

    hook = redact_with(HighEntropyRedactor())
    assert hook(HumanMessage(text)).content == text


@pytest.mark.parametrize(
    "setting", [{"base64_limit": -1}, {"hex_limit": 9}, {"base64_limit": True}]
)
def test_a_high_entropy_redactor_checks_its_settings(setting: dict[str, Any]) -> None:
    from compacting_supervisor.redaction import HighEntropyRedactor

    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"`{name}`"):
        HighEntropyRedactor(**setting)


_STRUCTURE_STRINGS = (
    _JSON_STRINGS
    | st.sampled_from(
        ['{"password": "Zq9xLm2Pw7Rt"}', '{"to ken": "Zq9xLm2Pw7Rt"}', '{"to!ken": "Zq9xLm2Pw7Rt"}',
         '{"se/cret": "hunter2"}', '{"to\x7fken": "Zq9xLm2Pw7Rt"}', '{"to!_ken": "Zq9xLm2Pw"}',
         '{"secre_!t": "hunter2"}', "a\\/b", "%41%42",
         "\\u0074oken=Zq9xLm2Pw7Rt", "%74oken=Zq9xLm2Pw7Rt", "data:image/png;base64,c2stYWJj",
         "pass\nword", "to ken", "x" * 90, "Authorization", "ghp_" + "a" * 36]
    )
)  # fmt: skip
_STRUCTURES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 10**6) | st.floats() | _STRUCTURE_STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_STRUCTURE_STRINGS | st.integers(0, 5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_STRUCTURES.filter(lambda value: isinstance(value, dict | list | tuple)))
def test_a_structure_told_quiet_in_one_look_is_one_the_walk_leaves_alone(value: Any) -> None:
    """Tool-call arguments and content blocks told "nothing to redact" in one look at their
    strings are exactly those the walk, string by string, returns as they are; otherwise
    the walk's result is what comes back."""
    from compacting_supervisor.redaction._rules import scan_secrets
    from compacting_supervisor.redaction._structure import _quiet_structure, redact_structure

    def walked(text: str) -> str:  # the same rules, without any of the built-in's shortcuts
        return scan_secrets(text)

    slow = redact_structure(value, walked)
    if _quiet_structure(value):
        assert slow is value
    assert redact_structure(value, scan_secrets) == slow


def test_a_structure_nested_past_the_walks_depth_is_not_told_quiet() -> None:
    """A structure deeper than the walk goes is replaced whole by the walk (fail closed):
    the one-look check must not return it as it is."""
    from compacting_supervisor.redaction._rules import scan_secrets
    from compacting_supervisor.redaction._structure import (
        TOO_DEEP,
        _quiet_structure,
        redact_structure,
    )

    value: Any = ["plain"]
    for _ in range(120):
        value = [value]
    assert not _quiet_structure(value)
    assert TOO_DEEP in json.dumps(redact_structure(value, scan_secrets))


@pytest.mark.parametrize(
    "key",
    ["to!ken", "se/cret", "X-Api-To:ken", "to\x7fken", "toke|n", "pass#word", "to!_ken",
     "secre_!t", "to _ken", "se/.cret"],
)  # fmt: skip
def test_a_json_key_split_by_any_punctuation_is_still_a_secret_key(key: str) -> None:
    """`key_kind` reads a JSON key's words apart at any run of characters but letters and
    digits; the quick checks that skip parsing must too, in text, in a tool call's argument
    holding JSON, and in a tool result."""
    body = json.dumps({key: "Zq9xLm2Pw7Rt", "note": "plain"}, ensure_ascii=False)
    assert "Zq9xLm2Pw7Rt" not in redact_text(body)
    call = {"name": "http", "args": {"body": body}, "id": "c1"}
    [redacted] = redact_secrets(AIMessage("", tool_calls=[call])).tool_calls
    assert "Zq9xLm2Pw7Rt" not in json.dumps(redacted)
    result = redact_secrets(ToolMessage(body, tool_call_id="c1"))
    assert "Zq9xLm2Pw7Rt" not in str(result.content)
    assert "plain" in str(result.content)
