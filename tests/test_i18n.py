"""English and simplified Chinese: every label, help text, button, tab, choice and explanatory
text of the page is a translation pair; the page switches language in its Settings."""

import json
import re

import pytest

MARKER = "__i18n__"
TEXT_PROPS = ("label", "info")


def _components():
    import app

    return app.demo.config["components"]


def _texts():
    """(component type, elem_id, prop, text) of every piece of interface text the page shows."""
    for c in _components():
        props, kind = c.get("props", {}), c["type"]
        for prop in TEXT_PROPS:
            text = props.get(prop)
            if isinstance(text, str) and text.strip() and props.get("show_label", True) is not False:
                yield kind, props.get("elem_id"), prop, text
        if kind in ("button", "downloadbutton") and isinstance(props.get("value"), str):
            yield kind, props.get("elem_id"), "value", props["value"]
        if kind == "markdown" and props.get("elem_id") is None and str(props.get("value") or "").strip():
            yield kind, None, "value", props["value"]  # explanatory text; Markdown with an elem_id is output
        for choice in props.get("choices") or []:
            if isinstance(choice, (list, tuple)) and len(choice) == 2 and str(choice[0]) != str(choice[1]):
                yield kind, props.get("elem_id"), "choice", str(choice[0])


def test_every_interface_text_is_translated():
    untranslated = [(kind, elem, prop, text[:60]) for kind, elem, prop, text in _texts() if MARKER not in text]
    assert untranslated == [], f"{len(untranslated)} texts without a translation, e.g. {untranslated[:8]}"


def test_at_most_one_marker_per_text():
    # The page replaces only the first marker of a string (Gradio 6.31).
    doubled = [(kind, elem, text[:80]) for kind, elem, _, text in _texts() if text.count(MARKER) > 1]
    assert doubled == []


def test_every_pair_has_chinese_and_every_marker_is_known():
    import app
    from panels.i18n import pairs

    known = pairs()
    assert len(known) >= 100
    for key, (en, zh) in known.items():
        assert re.search(r"[\u4e00-\u9fff]", zh) or zh == en, (en, zh)
    keys = set(re.findall(r'"key": "(vl\.[0-9a-f]+)"', json.dumps(app.demo.config, default=str)))  # a gr.State's delete callback is a function
    assert keys <= set(known)
    assert set(app.I18N.translations_dict) == {"en", "zh-CN"}


def test_tr_refuses_a_second_meaning():
    from panels.i18n import bilingual, tr, with_chinese

    assert tr("A word only this test uses", "只有这个测试用的词") == tr("A word only this test uses", "只有这个测试用的词")
    with pytest.raises(ValueError, match="already translated"):
        tr("A word only this test uses", "另一个意思")
    assert bilingual("bad", "坏") == "bad\n坏"
    assert with_chinese("bad\n坏") == "bad\n坏"


def test_the_chinese_line_blames_the_input_only_for_an_argument_check():
    from panels.i18n import with_chinese
    from vision_core._checks import ArgumentError
    from vision_core.weights import WeightsError

    bad_steps = with_chinese(ArgumentError("steps", "an integer in [1, 10]", 0))
    assert bad_steps.startswith("steps must be an integer in [1, 10], got 0\n输入有误：steps")
    missing = with_chinese(WeightsError("VGG-19's ImageNet weights are not on this machine"))
    assert missing.startswith("VGG-19's ImageNet weights are not on this machine\n")
    assert "权重文件" in missing and "输入有误" not in missing
    for other in (ValueError("the figure could not be drawn"), "the figure could not be drawn"):
        line = with_chinese(other).split("\n")[1]
        assert "输入有误" not in line and re.search(r"[\u4e00-\u9fff]", line)
