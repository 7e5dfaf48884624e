"""The words of a reply that is not a summary: refusals, provider errors, placeholders.

Written plainly, in the languages users speak (English, Spanish, French, German, Portuguese,
Italian, Dutch, Chinese, Japanese, Russian); `compacting_supervisor._summary_checks` folds
them exactly as it folds a reply (NFKC, curly quotes straightened, accents dropped,
casefolded), so "Je suis désolé" matches "je suis desole", and "I'm" written with a curly
apostrophe matches "i'm".

Openers are matched at the start of a reply (after a "Summary:" label), and only when the
next character is not a letter or digit ("fehler:" is an error, "Fehlerbehebung" is not).
Core phrases are looked for anywhere, but only in a short reply with no structure.
"""

from __future__ import annotations

__all__ = [
    "ERROR_CLAUSES",
    "ERROR_CORES",
    "ERROR_OPENERS",
    "ERROR_WORDS",
    "HTTP_REASONS",
    "JSON_ERROR_STARTS",
    "LABELS",
    "MARKUP_ENDS",
    "MARKUP_STARTS",
    "PLACEHOLDERS",
    "REFUSAL_CORES",
    "REFUSAL_OPENERS",
    "SECTIONS",
    "TRACE_OPENERS",
]

REFUSAL_OPENERS = (
    # English
    "i'm sorry", "i am sorry", "im sorry", "sorry, i", "sorry, but", "sorry i", "sorry -",
    "sorry!", "sorry.", "i apologize", "i apologise", "my apologies", "apologies, but",
    "i cannot", "i can't", "i can not", "i couldn't", "i could not", "i'm unable",
    "i am unable", "i'm not able", "i am not able", "i won't", "i will not", "i'm afraid i",
    "i am afraid i", "unfortunately, i", "unfortunately i", "as an ai", "as a language model",
    "as an assistant, i", "i must decline", "i have to decline", "i'm not comfortable",
    "i am not comfortable", "i don't feel comfortable", "i do not feel comfortable",
    "i'm not going to", "i am not going to", "i refuse", "that's not something i can",
    "this is not something i can", "i'm not allowed", "i am not allowed",
    # Spanish
    "lo siento", "lo lamento", "disculpa,", "disculpe,", "perdon, pero", "no puedo",
    "no me es posible", "lamentablemente, no puedo", "lamentablemente no puedo",
    "como modelo de lenguaje", "como ia,", "como una ia", "como asistente de ia",
    # French
    "je suis desole", "desole,", "desolee,", "je suis navre", "je ne peux pas",
    "je ne suis pas en mesure", "il m'est impossible", "je regrette, mais",
    "je m'excuse", "malheureusement, je ne", "malheureusement je ne", "en tant qu'ia",
    "en tant que modele de langage", "en tant qu'assistant",
    # German
    "es tut mir leid", "tut mir leid", "entschuldigung,", "entschuldige,",
    "leider kann ich", "leider ist es mir nicht moglich", "ich kann nicht", "ich kann keine",
    "ich kann dir nicht", "ich kann ihnen nicht", "ich kann dabei nicht",
    "ich bin nicht in der lage", "ich darf nicht", "als ki", "als sprachmodell",
    # Portuguese
    "desculpe", "desculpa,", "sinto muito", "lamento, mas", "infelizmente, nao posso",
    "infelizmente nao posso", "infelizmente, nao consigo", "nao posso", "nao consigo",
    "nao me e possivel", "como uma ia", "como modelo de linguagem",
    # Italian
    "mi dispiace", "spiacente", "purtroppo non posso", "purtroppo non sono in grado",
    "non posso", "non sono in grado", "mi scuso", "come ia,", "in quanto ia",
    "come modello linguistico", "in quanto modello linguistico",
    # Dutch
    "het spijt me", "sorry, ik", "helaas kan ik", "helaas ben ik", "ik kan niet",
    "ik kan je niet", "ik kan u niet", "ik kan hier niet", "ik ben niet in staat",
    "als ai", "als taalmodel", "excuses, maar", "mijn excuses",
    # Chinese (simplified and traditional)
    "抱歉", "很抱歉", "非常抱歉", "对不起", "對不起", "不好意思", "我无法", "我無法",
    "我不能", "我没办法", "我沒辦法", "作为ai", "作为一个ai", "作为 ai", "作为一个 ai",
    "作为人工智能", "作為ai", "作為一個ai", "作為 ai", "作為人工智慧",
    # Japanese
    "申し訳", "すみません", "ごめんなさい", "残念ながら、お", "お手伝いできません",
    "私はaiとして", "aiとして", "言語モデルとして", "その要求には", "そのリクエストには",
    # Russian
    "извините", "простите", "мне жаль", "к сожалению, я не", "к сожалению, не могу",
    "к сожалению я не", "я не могу", "я не в состоянии", "как ии", "как языковая модель",
    "как ai",
)  # fmt: skip
"""How a refusal starts."""

REFUSAL_CORES = (
    "i can't help", "i cannot help", "i can not help", "i can't assist", "i cannot assist",
    "i'm unable to", "i am unable to", "i'm not able to", "i am not able to",
    "i won't be able to", "i will not be able to", "i can't provide", "i cannot provide",
    "i can't summar", "i cannot summar", "i can't comply", "i cannot comply",
    "i must decline", "i'm not comfortable", "i am not comfortable", "i'm afraid i can",
    "no puedo ayudar", "no puedo resumir", "no puedo cumplir", "no puedo proporcionar",
    "je ne peux pas", "je ne suis pas en mesure", "kann ich nicht", "ich kann nicht",
    "ich kann keine", "nao posso ajudar", "nao posso resumir", "nao consigo ajudar",
    "nao consigo resumir", "non posso aiutar", "non posso riassumere", "non posso fornire",
    "kan ik niet", "ik kan niet", "我无法", "我無法", "我不能", "お手伝いできません",
    "お応えできません", "応じられません", "я не могу", "не могу помочь",
)  # fmt: skip
"""What a refusal says in the first person, wherever it says it: looked for only in a short
reply with no structure, outside quotation marks."""

ERROR_WORDS = (
    "error", "erreur", "fehler", "erro", "errore", "fout", "ошибка", "エラー", "错误", "錯誤",
)  # fmt: skip
"""Error words that open an error report when a ``:``, a code or nothing follows them."""

ERROR_OPENERS = (
    "error code", "an error occurred", "an error has occurred", "an unexpected error",
    "internal server error", "service temporarily unavailable", "request timed out",
    "too many requests", "rate limit exceeded", "rate limit reached", "rate limit error",
    "you exceeded your current quota", "insufficient_quota", "context_length_exceeded",
    "this model's maximum context length", "maximum context length is",
    "prompt is too long", "input is too long", "request too large",
    "the model is overloaded", "the server is overloaded", "the server had an error",
    "upstream connect error", "upstream request timeout", "invalid api key",
    "incorrect api key", "invalid_api_key", "authenticationerror", "http/1.", "http/2",
    "failed to generate", "failed to summar", "invalid_request_error",
    "your request was flagged", "the response was filtered", "model_not_found",
    "resource_exhausted", "deadline_exceeded", "server_error", "overloaded_error",
    "rate_limit_exceeded",
    # Spanish, French, German, Portuguese, Italian, Dutch
    "se produjo un error", "ha ocurrido un error", "ocurrio un error",
    "error interno del servidor", "demasiadas solicitudes", "une erreur est survenue",
    "une erreur s'est produite", "erreur interne du serveur", "trop de requetes",
    "ein fehler ist aufgetreten", "interner serverfehler", "zu viele anfragen",
    "ocorreu um erro", "erro interno do servidor", "muitas solicitacoes",
    "muitas requisicoes", "si e verificato un errore", "errore interno del server",
    "troppe richieste", "er is een fout opgetreden", "interne serverfout",
    "te veel verzoeken",
    # Chinese, Japanese, Russian
    "出错", "发生错误", "發生錯誤", "服务器错误", "伺服器錯誤", "内部错误", "請求過多",
    "请求过多", "请求频率", "服务不可用", "服務無法使用", "请求超时", "請求逾時",
    "サーバーエラー", "内部エラー", "リクエストが多すぎ", "サービスを利用できません",
    "サービスが利用できません", "произошла ошибка", "внутренняя ошибка",
    "ошибка сервера", "слишком много запросов", "сервис временно недоступен",
    "превышен лимит запросов", "превышено время ожидания",
)  # fmt: skip
"""How a provider's error report starts (phrases no summary opens with)."""

ERROR_CLAUSES = (
    "error occurred", "unexpected error", "internal error", "server error", "bad gateway",
    "service unavailable", "gateway timeout", "gateway time-out", "request timeout",
    "timed out", "timeout", "timeout error", "rate limited", "rate-limited", "ratelimit",
    "rate limit", "rate_limit", "quota exceeded", "overloaded", "connection error",
    "connection refused", "connection reset", "api error", "apierror", "unauthorized",
    "forbidden", "access denied", "permission denied", "authentication error",
    "http error", "status code", "request failed", "invalid request", "bad request",
    "not found", "content_filter", "content filter", "resource exhausted",
    "deadline exceeded", "service is unavailable", "internal server error",
    "error interno", "error del servidor", "servicio no disponible", "erreur interne",
    "erreur du serveur", "erreur serveur", "service indisponible", "serverfehler",
    "interner fehler", "dienst nicht verfugbar", "zeituberschreitung", "erro interno",
    "erro do servidor", "servico indisponivel", "errore interno", "errore del server",
    "servizio non disponibile", "interne fout", "serverfout", "dienst niet beschikbaar",
    "タイムアウト", "сервис недоступен", "превышен лимит",
)  # fmt: skip
"""Error words that open an error report only as a whole clause ("Overloaded.",
"Forbidden: ..."), not a sentence ("Overloaded servers were the theme")."""


ERROR_CORES = (
    "context_length_exceeded", "rate_limit_exceeded", "insufficient_quota",
    "ratelimiterror", "apiconnectionerror", "apitimeouterror", "internalservererror",
    "overloaded_error", "invalid_request_error", "resource_exhausted", "deadline_exceeded",
    "model_not_found", "error code:", "status code:", "maximum context length is",
    "you exceeded your current quota",
)  # fmt: skip
"""What only an error report says, wherever it says it: looked for only in a short reply
with no structure, outside quotation marks."""

HTTP_REASONS = (
    "bad request", "unauthorized", "payment required", "forbidden", "not found",
    "method not allowed", "not acceptable", "request timeout", "conflict", "gone",
    "payload too large", "request entity too large", "unprocessable", "too many requests",
    "internal server error", "not implemented", "bad gateway", "service unavailable",
    "gateway timeout", "client error", "server error", "-", ":",
)  # fmt: skip
"""What follows an HTTP status code (400-599) at the start of an error report."""

TRACE_OPENERS = (
    "traceback (most recent call last)", "exception in thread", "panic:", "fatal error:",
    "uncaught exception", "unhandled exception", "stack trace:", "stacktrace:",
    "goroutine ", "at java.", "caused by:",
)  # fmt: skip
"""How a stack trace starts."""

JSON_ERROR_STARTS = (
    '{"error', "{'error", '{"errors"', "{'errors'", '{"detail"', "{'detail'",
    '{"type":"error"', "{'type':'error'", '{"message"', "{'message'", '{"status":"error',
    '{"status":4', '{"status":5', '{"code":4', '{"code":5', '{"statuscode"', '{"fault"',
    '{"object":"error"', '[{"error', "[{'error",
)  # fmt: skip
"""How a JSON error body starts, with its whitespace removed."""

MARKUP_STARTS = (
    "<!doctype", "<html", "<?xml", "<head", "<body", "<title", "<h1", "<center", "<div",
    "<error", "<!--", "<meta", "<script", "<style", "<table",
)  # fmt: skip
"""How a markup page (HTML, an XML error document) starts."""

MARKUP_ENDS = ("</html>", "</body>", "</error>", "</errors>", "</response>", "</div>")
"""How a markup page ends."""

LABELS = (
    "summary", "updated summary", "running summary", "new summary", "conversation summary",
    "the summary", "here is the summary", "here's the summary", "here is the updated summary",
    "here's the updated summary", "resumen", "resumen actualizado", "resume",
    "resume mis a jour", "zusammenfassung", "aktualisierte zusammenfassung", "resumo",
    "resumo atualizado", "riepilogo", "sommario", "riassunto", "samenvatting",
    "总结", "摘要", "總結", "要約", "概要", "まとめ", "резюме", "сводка", "итог",
    "краткое содержание",
)  # fmt: skip
"""Labels a reply may put before its text ("Summary:", "## Resumen")."""

SECTIONS = (
    "goal", "goals", "discoveries", "decisions", "artifacts", "artifacts (verbatim)",
    "open tasks", "current state", "status", "notes", "context", "facts", "next steps",
    "tasks", "objetivo", "objectif", "ziel", "obiettivo", "doel", "目标", "目標", "цель",
)  # fmt: skip
"""Section names (the default prompt's, and common others): a heading when alone on a line,
and "Goal: none" is a placeholder."""

PLACEHOLDERS = frozenset(
    {
        "", "-", "--", "---", "...", "…", "n/a", "na", "n.a", "nil", "null", "none", "none yet",
        "nothing", "nothing yet", "nothing new", "nothing to report", "nothing to add",
        "nothing to summarize", "nothing to summarise", "nothing to summarize yet",
        "no summary", "no summary available", "no summary yet", "summary unavailable",
        "no content", "no information", "no new information", "no updates", "no update",
        "no changes", "no change", "unchanged", "empty", "tbd", "todo", "to do", "unknown",
        "not available", "not applicable", "ok", "okay", "done", "complete", "completed",
        "finished", "yes", "no", "see above", "as above", "same as before", "same as above",
        "summary", "summary here", "summary goes here", "your summary here",
        "insert summary here", "placeholder", "lorem ipsum", "undefined", "nan",
        "previous conversation was too long to summarize",
        "previous conversation was too long to summarise",
        "ninguno", "ninguna", "nada", "sin cambios", "aucun", "aucune", "rien", "neant",
        "pas de resume", "keine", "keiner", "keines", "nichts", "keine anderungen",
        "nenhum", "nenhuma", "sem alteracoes", "nessuno", "nessuna", "niente", "nulla",
        "geen", "niets", "无", "無", "没有", "沒有", "暂无", "暫無", "なし", "特になし",
        "ありません", "нет", "ничего", "отсутствует",
    }
)  # fmt: skip
"""Text that stands where a summary should be (after "Summary:" or under a heading)."""
