# ruff: noqa: RUF001 (look-alike characters are what this corpus tests)
"""Summariser replies: ones that must never replace history, and real summaries.

``BAD`` holds (kind, note, reply) for replies that are not a summary: refusals, provider
errors, markup pages, headings without a body, placeholders and near-empty text, in the
languages users speak. ``REAL`` holds (note, summary) for real summaries: every distinct
summary the tests and the demos (``examples/hr_assistant.py``, ``examples/quickstart.py``)
produced (collected by recording what ``validate_summary`` was handed during a full test
run and the demo runs), and structured summaries in ``DEFAULT_SUMMARY_PROMPT``'s format,
some quoting errors and refusals. ``tests/test_summary_checks.py`` asserts every bad reply
is rejected and every real one accepted; ``benchmarks/summary_checks.py`` prints the counts.
"""

from __future__ import annotations

from tests.data.summary_replies_collected import COLLECTED

__all__ = ["BAD", "KINDS", "REAL"]

KINDS = ("refusal", "provider error", "markup", "headings only", "near-empty")

NGINX_502 = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>"""

CLOUDFLARE_524 = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html lang="en-US">
<head><title>api.example.com | 524: A timeout occurred</title>
<meta charset="UTF-8" /></head>
<body><div id="cf-wrapper"><h1>A timeout occurred</h1>
<p>The origin web server timed out responding to this request.</p></div></body>
</html>"""

S3_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message>
<RequestId>4442587FB7D0A2F9</RequestId></Error>"""

TRACEBACK = """Traceback (most recent call last):
  File "/app/summarise.py", line 42, in summarise
    reply = client.chat.completions.create(**request)
  File "/usr/lib/python3.12/site-packages/openai/_base_client.py", line 1059, in request
    raise self._make_status_error_from_response(err.response) from None
openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached'}}"""

BAD: list[tuple[str, str, str]] = [
    # --- refusals -------------------------------------------------------------------------
    ("refusal", "curly apostrophes (the issue's example)", "I’m sorry, but I can’t help with that."),
    ("refusal", "straight apostrophes", "I'm sorry, I can't help with that."),
    ("refusal", "I cannot + reason", "I cannot summarize this conversation because it contains personal data."),
    ("refusal", "as an AI", "As an AI language model, I am not able to produce that summary."),
    ("refusal", "unfortunately", "Unfortunately, I can't assist with this request."),
    ("refusal", "apology", "I apologize, but I won't be able to summarise this content."),
    ("refusal", "refusal behind a label", "Summary: I'm sorry, I cannot comply with this request."),
    ("refusal", "refusal under a heading", "## Summary\nI’m unable to help with that request."),
    ("refusal", "quoted whole", "“Sorry, but I can’t provide a summary of this conversation.”"),
    ("refusal", "polite preamble then refusal (short)", "Thanks for the context. However, this is something I cannot help with."),
    ("refusal", "Spanish", "Lo siento, pero no puedo ayudar con eso."),
    ("refusal", "Spanish, no puedo", "No puedo resumir esta conversación."),
    ("refusal", "French", "Je suis désolé, mais je ne peux pas vous aider avec cela."),
    ("refusal", "French, no accents", "Desole, je ne peux pas resumer cette conversation."),
    ("refusal", "German", "Es tut mir leid, aber dabei kann ich nicht helfen."),
    ("refusal", "German, leider", "Leider kann ich diese Anfrage nicht bearbeiten."),
    ("refusal", "Portuguese", "Desculpe, mas não posso ajudar com isso."),
    ("refusal", "Portuguese, sinto muito", "Sinto muito, não consigo resumir esta conversa."),
    ("refusal", "Italian", "Mi dispiace, ma non posso aiutarti con questa richiesta."),
    ("refusal", "Dutch", "Het spijt me, maar daar kan ik je niet mee helpen."),
    ("refusal", "Chinese (simplified)", "抱歉，我无法帮助完成这个请求。"),
    ("refusal", "Chinese (traditional)", "對不起，我無法協助處理這個請求。"),
    ("refusal", "Japanese", "申し訳ありませんが、そのリクエストにはお応えできません。"),
    ("refusal", "Russian", "Извините, но я не могу помочь с этим запросом."),
    ("refusal", "full-width letters (NFKC)", "Ｉ'ｍ ｓｏｒｒｙ, ｂｕｔ Ｉ ｃａｎ'ｔ ｈｅｌｐ ｗｉｔｈ ｔｈａｔ."),
    # --- provider errors ------------------------------------------------------------------
    ("provider error", "the issue's example", "Error 429: rate limit exceeded"),
    ("provider error", "error colon", "Error: upstream model overloaded"),
    ("provider error", "bare rate limit", "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min (TPM): Limit 200000, Used 199000."),
    ("provider error", "context length", "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens."),
    ("provider error", "context_length_exceeded code", "Request failed: context_length_exceeded"),
    ("provider error", "OpenAI JSON error body", '{"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}'),
    ("provider error", "Anthropic JSON error body", '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'),
    ("provider error", "FastAPI detail body", '{"detail": "Internal Server Error"}'),
    ("provider error", "JSON in a code fence", '```json\n{"error": {"code": 503, "message": "The model is overloaded."}}\n```'),
    ("provider error", "Python traceback", TRACEBACK),
    ("provider error", "exception line", "openai.APIConnectionError: Connection error."),
    ("provider error", "status line", "503 Service Unavailable"),
    ("provider error", "HTTP status line", "HTTP/1.1 502 Bad Gateway"),
    ("provider error", "internal server error", "Internal Server Error"),
    ("provider error", "quota", "You exceeded your current quota, please check your plan and billing details."),
    ("provider error", "invalid key", "Incorrect API key provided: sk-proj-****abcd."),
    ("provider error", "timeout", "Request timed out."),
    ("provider error", "Spanish", "Error: se produjo un error interno del servidor."),
    ("provider error", "French", "Erreur 500 : erreur interne du serveur"),
    ("provider error", "German", "Fehler: Zu viele Anfragen. Bitte später erneut versuchen."),
    ("provider error", "Portuguese", "Ocorreu um erro ao processar sua solicitação."),
    ("provider error", "Italian", "Si è verificato un errore. Riprova più tardi."),
    ("provider error", "Dutch", "Er is een fout opgetreden bij het verwerken van je verzoek."),
    ("provider error", "Chinese", "错误：请求过多，请稍后再试。"),
    ("provider error", "Japanese", "エラー: リクエストが多すぎます。しばらくしてから再試行してください。"),
    ("provider error", "Russian", "Ошибка: слишком много запросов. Повторите попытку позже."),
    # --- markup pages ---------------------------------------------------------------------
    ("markup", "nginx 502 page", NGINX_502),
    ("markup", "Cloudflare 524 page", CLOUDFLARE_524),
    ("markup", "S3 XML error document", S3_XML),
    ("markup", "HTML in a code fence", "```html\n<!doctype html><html><body><h1>503</h1></body></html>\n```"),
    ("markup", "bare error heading markup", "<h1>504 Gateway Time-out</h1>\nThe server didn't respond in time."),
    # --- headings without a body ----------------------------------------------------------
    ("headings only", "the issue's example", "Summary:"),
    ("headings only", "markdown heading", "## Summary"),
    ("headings only", "every default section, nothing under them", "## Goal\n## Discoveries\n## Decisions\n## Artifacts (verbatim)\n## Open tasks\n## Current state"),
    ("headings only", "every section 'none'", "## Goal\n- none\n## Discoveries\n- none\n## Decisions\n- none\n## Artifacts (verbatim)\n- none\n## Open tasks\n- none\n## Current state\n- none"),
    ("headings only", "bold headings", "**Goal**\n**Decisions**\n**Current state**"),
    ("headings only", "a test's faithful fake with no ids to list", "## Artifacts (verbatim)\n"),
    ("headings only", "Spanish heading", "Resumen:"),
    ("headings only", "Chinese heading", "## 摘要"),
    # --- placeholders and near-empty text -------------------------------------------------
    ("near-empty", "the issue's example", "-"),
    ("near-empty", "empty", ""),
    ("near-empty", "whitespace", "   \n\t  "),
    ("near-empty", "punctuation only", "..."),
    ("near-empty", "ellipsis character", "…"),
    ("near-empty", "rule", "---"),
    ("near-empty", "N/A", "N/A"),
    ("near-empty", "none", "None."),
    ("headings only", "one word: the label alone", "Summary"),
    ("near-empty", "one word", "Hello"),
    ("near-empty", "OK", "OK"),
    ("near-empty", "done", "Done."),
    ("near-empty", "label and placeholder", "Summary: N/A"),
    ("near-empty", "template slot", "[Insert summary here]"),
    ("near-empty", "template braces", "{summary}"),
    ("near-empty", "placeholder tag", "<summary>"),
    ("near-empty", "LangChain's fallback text", "Previous conversation was too long to summarize."),
    ("near-empty", "no summary", "No summary available."),
    ("near-empty", "TBD", "TBD"),
    ("near-empty", "emoji", "👍"),
    ("near-empty", "Spanish nothing", "Nada."),
    ("near-empty", "German nothing", "Nichts"),
    ("near-empty", "Chinese none", "无"),
    ("near-empty", "Japanese none", "特になし"),
    ("near-empty", "Russian none", "Нет."),
]  # fmt: skip

STRUCTURED: list[tuple[str, str]] = [
    (
        "default format, HR team",
        """## Goal
- Hire a backend engineer; interviews in the week of 13 January, panel of three.
## Discoveries
- 4 candidates applied: Alice Chen (CAND-101), Bob Martins (CAND-102), Carol Diaz (CAND-103), Dan Okafor (CAND-104).
- Bob Martins is the only one with Kubernetes experience (candidates_agent, read_cv).
## Decisions
- Interview Alice, Bob and Carol; Dan ruled out (4 years, no Go).
## Artifacts (verbatim)
- INT-2041: Alice Chen, Tuesday 14 January 10:00, room Tagus
- INT-2042: Bob Martins, Wednesday 15 January 14:00, room Tagus
- INT-2043: Carol Diaz, Thursday 16 January 11:30, room Tagus
## Open tasks
- Send the panel the CVs before Monday.
## Current state
- Three interviews booked; the user asked for a reminder on Friday.""",
    ),
    (
        "default format, quotes a refusal in a bullet",
        """## Goal
- Produce the Q3 payroll report for the finance team.
## Discoveries
- The payroll agent answered "I'm sorry, but I can't help with that." when asked for individual salaries (access policy HR-7).
- Totals per department are available from get_payroll_totals.
## Decisions
- Report totals only; no individual salaries.
## Artifacts (verbatim)
- report id PR-2024-Q3
- totals: Engineering 1,204,500 EUR; Sales 803,120 EUR
## Open tasks
- none
## Current state
- Report drafted; waiting for the user's approval.""",
    ),
    (
        "default format, quotes provider errors",
        """## Goal
- Migrate the nightly ETL job to the new cluster without losing a run.
## Discoveries
- The first run failed with "Error 429: rate limit exceeded" from the geocoding API; the second with "503 Service Unavailable".
- A traceback showed `KeyError: 'region'` in transform.py line 88.
## Decisions
- Add exponential back-off (base 2 s, 5 retries) to the geocoding client.
## Artifacts (verbatim)
- job etl-nightly, cluster prod-eu-2
- commit 9f3c2ab
- /srv/etl/transform.py:88
## Open tasks
- Fix the missing region key; re-run 2024-11-03.
## Current state
- Back-off merged; the re-run is scheduled for 02:00 UTC.""",
    ),
    (
        "default format, starts with an error topic",
        """## Goal
- Error budgets: the user wants the SLO dashboard to show remaining error budget per service.
## Discoveries
- checkout-api burned 62% of its 30-day budget; search-api 11%.
## Decisions
- Alert at 50% burn over 7 days.
## Artifacts (verbatim)
- dashboard uid slo-main
- alert rule error-budget-burn-7d
## Open tasks
- Add the payments service.
## Current state
- Dashboard panels done; alert rule in review.""",
    ),
    (
        "default format, most sections none",
        """## Goal
- Book a table for two in Lisbon on 14 May.
## Discoveries
- none
## Decisions
- none
## Artifacts (verbatim)
- none
## Open tasks
- Confirm the time with Sam.
## Current state
- Waiting for the user to pick 19:30 or 21:00.""",
    ),
    (
        "default format, travel",
        """## Goal
- Maya and Sam: Lisbon from 12 to 16 May, budget 2000 EUR, Maya is allergic to nuts.
## Discoveries
- Flight TP 1351 lands at 09:40 on 12 May.
- Casa Amora (Rua da Alegria 12) has a room at 140 EUR/night.
## Decisions
- Stay at Casa Amora; no car.
## Artifacts (verbatim)
- booking CA-88213
- Tasca do Chico, Bairro Alto: fado nightly from 21:00
## Open tasks
- Book the fado evening; find a nut-free bakery.
## Current state
- The user asked for a day trip to Sintra; the agent is checking trains.""",
    ),
    (
        "default format, support ticket quoting an HTML error",
        """## Goal
- Find why the customer portal shows a blank page after login.
## Discoveries
- The load balancer returns an HTML page "<h1>502 Bad Gateway</h1>" when the auth service restarts.
- Restarts follow OOM kills (limit 512 MiB).
## Decisions
- Raise the memory limit to 1 GiB.
## Artifacts (verbatim)
- ticket SUP-4471
- pod auth-7d9f8-x2k4q
## Open tasks
- Watch for OOM kills for 48 hours.
## Current state
- Limit raised at 14:05; no 502 since.""",
    ),
    (
        "Spanish summary in the default format",
        """## Objetivo
- Reservar un hotel en Madrid del 3 al 6 de junio para dos personas, máximo 150 EUR por noche.
## Descubrimientos
- Hotel Prado (calle del Prado 11) tiene habitación a 132 EUR.
## Decisiones
- Reservar el Hotel Prado.
## Artefactos (literal)
- reserva HP-55120
## Tareas abiertas
- Pedir cama de matrimonio.
## Estado actual
- Reserva confirmada; el usuario pide un restaurante cerca.""",
    ),
    (
        "German summary",
        """## Ziel
- Umzug des Büros nach Berlin-Mitte zum 1. März.
## Erkenntnisse
- Fehlerbehebung am Drucker erledigt; das Angebot von Umzugsfirma Krause: 4.200 EUR.
## Entscheidungen
- Krause beauftragt.
## Artefakte (wörtlich)
- Auftrag KR-2024-118
## Offene Aufgaben
- Parkgenehmigung beantragen.
## Aktueller Stand
- Kartons bestellt.""",
    ),
    (
        "Chinese summary",
        """## 目标
- 用户想在五月十二日至十六日去里斯本旅行，预算两千欧元。
## 发现
- 航班 TP 1351 于五月十二日 09:40 抵达。
## 决定
- 入住 Casa Amora 酒店。
## 产物（原文）
- 预订号 CA-88213
## 待办
- 预订法朵之夜。
## 当前状态
- 用户询问去辛特拉的一日游。""",
    ),
    (
        "custom prompt: summary in <summary> tags",
        "<summary>\nThe user is debugging a flaky test in payments/test_refunds.py; it fails 1 run in 20 with a timeout. The agent found a shared fixture leaking a DB connection and proposed a fix (PR #4412).\n</summary>",
    ),
    (
        "custom prompt: JSON summary",
        '{"goal": "renew the TLS certificates", "done": ["api.example.com renewed, expires 2025-03-01"], "open": ["cdn.example.com"]}',
    ),
    (
        "prose summary starting with 'Error handling'",
        "Error handling was the main topic: the user and the agent discussed retries for the payment webhook, settled on 3 attempts with 10 s back-off, and agreed to log every failure with its request id.",
    ),
    (
        "prose summary mentioning a rate limit",
        "The user hit a rate limit on the weather API (HTTP 429) while fetching 40 cities; the agent batched the requests by 10 and all results came back. Paris, Rome and Oslo are the three warmest.",
    ),
    (
        "prose summary starting with a number",
        "404 tickets were closed in the sprint; the user wants the remaining 37 triaged by Friday and the on-call rota for December drafted.",
    ),
    (
        "short summary mentioning 'sorry'",
        "The user said sorry for the late reply and confirmed the 10:00 slot on 14 January.",
    ),
    (
        "long summary quoting a Japanese refusal in a bullet",
        "## Goal\n- Translate the onboarding guide into Japanese.\n## Discoveries\n- The translation agent once answered 「申し訳ありませんが、お手伝いできません。」 for the legal section.\n## Decisions\n- The legal section is translated by a human.\n## Artifacts (verbatim)\n- guide v3.2, 48 pages\n## Open tasks\n- none\n## Current state\n- 31 of 48 pages done.",
    ),
    (
        "default format, first bullets name error settings",
        "## Goal\n- Timeout: raise the vendor API timeout to 30 s.\n- Rate limit: stay under 100 requests/s.\n## Decisions\n- Retry 3 times with back-off.\n## Current state\n- Deployed on 12 May; no errors since.",
    ),
    (
        "summary with a code block holding an exception",
        "## Goal\n- Fix the nightly import.\n## Discoveries\n- It fails with:\n```\nValueError: invalid literal for int() with base 10: 'N/A'\n```\n- Row 1,882 of orders.csv has 'N/A' in the quantity column.\n## Decisions\n- Treat 'N/A' as 0 and log it.\n## Current state\n- Patch deployed; import green since 03:00.",
    ),
]  # fmt: skip

REAL: list[tuple[str, str]] = [*STRUCTURED, *COLLECTED]
