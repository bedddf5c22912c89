"""Issue 18, item 4 in the panels: training offers the book's fetched data beside the offline stand-ins."""

import pytest

from panels import ssd
from panels.segmentation import training
from vision_core import fetch as F
from vision_core.data.bananas import generate_bananas

pytestmark = pytest.mark.app


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_LAB_DATA", str(tmp_path))
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    return F.book_dir()


def test_the_books_bananas_are_asked_for_by_name_and_refused_when_missing(book):
    assert ssd.training_data("offline") is None
    with pytest.raises(ValueError, match=r"the book's bananas are not on this machine yet: `python -m vision_core "
                                         r"fetch bananas` fetches them"):
        ssd.training_data("book")
    assert ssd.book_recipe(None)[5] == "offline" and "trains on the offline stand-in" in ssd.book_recipe(None)[-1]


def test_ssd_trains_on_the_books_bananas_when_they_are_here(book):
    generate_bananas(book / "banana-detection", num_train=10, num_val=4)  # the book's layout, standing in here
    assert ssd.training_data("book") == book / "banana-detection"
    assert ssd.book_recipe(None)[5] == "book"
    frames = list(ssd.train(1, 10, 0.2, 10, "sgd", "book", progress=lambda *a, **k: None))
    assert frames[-1][2].startswith("**Done.**")
    assert ssd.sessions.active(None)[1] == "mine — trained here: 1 epoch on 10 of the book's images"


def test_fcn_asks_for_voc_by_name_and_refuses_when_missing(book):
    with pytest.raises(ValueError, match=r"Pascal VOC 2012 is not on this machine yet: `python -m vision_core "
                                         r"fetch voc2012` fetches it"):
        training.book_voc()
    assert training.book_recipe(None)[6] == "offline"
