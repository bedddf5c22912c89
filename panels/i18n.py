"""The page in English and simplified Chinese, with Gradio's own i18n (``gr.I18n``).

A panel writes each piece of interface text once, as a pair::

    gr.Slider(..., label=tr("Steps (the book: 500)", "步数（书中：500）"))

:func:`tr` records the pair under a key made from the English text and returns Gradio's
translation marker (``str(I18nData(key))``). The page replaces every marker by the text of
the language chosen in its Settings panel (the browser's language at first): in labels, help
texts (``info``), button and tab titles, choices, and Markdown values, also inside a longer
string, so ``tr(...) + " 3/5"`` works; but only the first marker of a string is replaced
(Gradio 6.31, measured), so a string holds at most one. :func:`translations` builds the ``gr.I18n`` that
``launch(i18n=...)`` needs from every pair recorded, so it is called after the panels are
built.

What the server computes while it runs (status lines, summaries, tables) stays English: those
strings are also the API's output, which programs read. Error toasts are not translated by
Gradio 6.31 (measured: a marker in ``gr.Error`` shows raw), so :func:`bilingual` writes both
languages into the message, English first.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

LANGUAGES = ("en", "zh-CN")
_PAIRS: dict[str, tuple[str, str]] = {}


def key_of(en: str) -> str:
    """The translation key of the English text ``en`` (what the page's translations are indexed by)."""
    return "vl." + hashlib.sha1(en.encode("utf-8")).hexdigest()[:16]


def tr(en: str, zh: str) -> str:
    """Record the English / simplified Chinese pair and return the page's translation marker for it.

    The same English text may be recorded again only with the same Chinese (one key, one meaning).
    """
    if not (isinstance(en, str) and isinstance(zh, str) and en and zh):
        raise ValueError("tr() needs a non-empty English and a non-empty Chinese text")
    key = key_of(en)
    known = _PAIRS.get(key)
    if known is not None and known[1] != zh:
        raise ValueError(f"{en!r} is already translated as {known[1]!r}, not {zh!r}")
    _PAIRS[key] = (en, zh)
    from gradio.i18n import I18nData

    return str(I18nData(key))


def bilingual(en: str, zh: str) -> str:
    """An error message in both languages (English first, as the API's readers expect)."""
    return f"{en}\n{zh}"


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# The Chinese line under an English-only error, by what went wrong: only an argument check says the
# input was wrong; a weight file that is missing or broken, or any other failure, does not.
_INPUT_ZH = "输入有误：{name} 不符合要求，请按上面一行英文说明修改后重试。"
_WEIGHTS_ZH = "所需的权重文件不可用（不在本机、不完整或已损坏）：原因和获取方法见上面一行英文说明。"
_OTHER_ZH = "操作没有完成：原因见上面一行英文说明。"


def with_chinese(error: BaseException | str) -> str:
    """The message of ``error`` if it already has its Chinese line, else the English one with a
    Chinese line after it that says what kind of failure it was.

    The library (vision_core) writes its messages in English only, like PyTorch's; the panels
    write theirs with :func:`bilingual`. An ``ArgumentError`` (an argument check) is an input
    mistake and its Chinese line says so, naming the argument; a ``WeightsError`` is about a weight
    file, not the input; any other error (or a bare message) gets a neutral line.
    """
    message = str(error)
    if _has_chinese(message):
        return message
    from vision_core._checks import ArgumentError
    from vision_core.weights import WeightsError

    if isinstance(error, ArgumentError):
        return bilingual(message, _INPUT_ZH.format(name=error.name))
    if isinstance(error, WeightsError):
        return bilingual(message, _WEIGHTS_ZH)
    return bilingual(message, _OTHER_ZH)


def _resolve(text: object, index: int) -> str:
    text = str(text or "")
    start = text.find("__i18n__")
    end = text.find("}", start) + 1 if start >= 0 else 0
    if start < 0 or end <= 0:
        return text
    import json

    try:
        key = json.loads(text[start + len("__i18n__"):end])["key"]
    except (ValueError, KeyError, TypeError):
        return text
    return text[:start] + _PAIRS.get(key, (key, key))[index] + text[end:]


def english(text: object) -> str:
    """``text`` with its translation marker (if any) replaced by the English: for messages the
    server writes about a component, e.g. naming its label."""
    return _resolve(text, 0)


def chinese(text: object) -> str:
    """Like :func:`english`, with the Chinese."""
    return _resolve(text, 1)


def pairs() -> dict[str, tuple[str, str]]:
    """Every recorded pair, by key."""
    return dict(_PAIRS)


def translations() -> gr.I18n:
    """``gr.I18n`` with every pair recorded so far (build the panels first)."""
    import gradio as gr

    return gr.I18n(en={k: en for k, (en, _) in _PAIRS.items()}, **{"zh-CN": {k: zh for k, (_, zh) in _PAIRS.items()}})
