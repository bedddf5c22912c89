"""What every panel shares: checked input components, images from uploads, errors shown as
gr.Error in both languages, out-of-memory handling, and the per-session Stop flags."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, UnidentifiedImageError

# The picture limits are the library's, so the page and the command line refuse the same pictures
# (vision_core/_images.py says why each is what it is).
from vision_core._images import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE  # noqa: F401

from .deployment import on_space
from .i18n import bilingual, chinese, english, tr, with_chinese
from .streaming import job_flag

MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # launch(max_file_size=...): Gradio refuses bigger files before they arrive

# PIL refuses to decode more than twice this many pixels (DecompressionBombError), so a
# decompression bomb or a 20000 x 20000 upload is stopped before it is unpacked in memory; a
# picture between this and twice it decodes and is refused by as_rgb_image with the limit.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# The Chinese for the names the panels give their inputs, for the second line of an error.
_NAMES_ZH = {
    "image": "图像", "photo": "照片", "sketch": "草图", "content image": "内容图像", "style image": "风格图像",
    "sizes": "缩放比", "ratios": "宽高比",
}


def session_of(request: gr.Request | None) -> str:
    """The browser session of a request (``"api"`` for calls without one)."""
    return getattr(request, "session_hash", None) or "api"


def _request_part(request: Any, name: str) -> Any:
    """``request.request.<name>`` (the Starlette request inside gr.Request), else ``request.<name>``
    (gr.Request keeps a copy when it has no Starlette request, on ZeroGPU), else None."""
    for holder in (getattr(request, "request", None), request):
        try:
            value = getattr(holder, name, None) if holder is not None else None
        except Exception:  # gr.Request.__getattr__ raises AttributeError/KeyError for what it lacks
            value = None
        if value is not None:
            return value
    return None


def visitor_of(request: gr.Request | None) -> str:
    """The visitor behind a request: the client's address (``"local"`` for calls without one).

    Per-visitor limits key on this, not on the session hash, which a visitor renews with every
    page load. On a Hugging Face Space every request reaches the app from Hugging Face's proxy,
    so the visitor is the first ``X-Forwarded-For`` hop; elsewhere the header is ignored (anyone
    can write it, and a local server has no proxy in front).
    """
    if request is None:
        return "local"
    if on_space():
        headers = _request_part(request, "headers")
        forwarded = str(headers.get("x-forwarded-for") or "") if hasattr(headers, "get") else ""
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    client = _request_part(request, "client")
    host = client.get("host") if isinstance(client, dict) else getattr(client, "host", None)
    return str(host) if host else "local"


class StopFlags:
    """One Stop flag per browser session for a panel's long job (docs/ARCHITECTURE.md, "Streaming and
    Stop": Gradio's ``cancels=`` leaves red "Error" labels, so Stop sets a flag the job checks every step).

    A flag belongs to a running job: it is made when the job starts and dropped when it ends,
    whatever else the session keeps (its trained network, say).

    Args:
        stopping: what the Stop button answers while the session runs a job.
        idle: what it answers when the session runs nothing.
    """

    def __init__(self, stopping: str, idle: str) -> None:
        self.stopping, self.idle = stopping, idle
        self._flags: dict[str, threading.Event] = {}

    def start(self, request: gr.Request | None) -> threading.Event:
        """A fresh flag for this session's new job (replacing an older one); on a shared server it
        also sets itself when the job's time budget runs out (panels.streaming.JobFlag)."""
        flag = job_flag()
        self._flags[session_of(request)] = flag
        return flag

    def finish(self, request: gr.Request | None, flag: threading.Event) -> None:
        """Forget ``flag`` when its job ends (unless a newer job of the session replaced it)."""
        session = session_of(request)
        if self._flags.get(session) is flag:
            del self._flags[session]

    @contextlib.contextmanager
    def running(self, request: gr.Request | None) -> Iterator[threading.Event]:
        """The flag of a job that runs inside the ``with`` block, forgotten when the block ends."""
        flag = self.start(request)
        try:
            yield flag
        finally:
            self.finish(request, flag)

    def stop(self, request: gr.Request | None) -> bool:
        """Set this session's flag; False when it runs nothing."""
        flag = self._flags.get(session_of(request))
        if flag is None:
            return False
        flag.set()
        return True

    def press(self, request: gr.Request | None) -> str:
        """The Stop button: set this session's flag and say so (``self.stop`` looked up per call,
        so a test may count what it does)."""
        return self.stopping if self.stop(request) else self.idle


def _zh(name: str) -> str:
    return _NAMES_ZH.get(name, name)


def as_rgb_image(value: Any, name: str = "image") -> np.ndarray:
    """Any image Gradio hands over -> ``uint8`` RGB ``[H, W, 3]``, or ValueError saying why not.

    Grayscale is repeated to three channels, alpha is dropped, 16-bit and float images
    are rescaled to 0..255.
    """
    if value is None:
        raise ValueError(bilingual(f"{name}: no image; choose an example or upload one",
                                    f"{_zh(name)}：没有图像；请选择一个示例或上传一张"))
    array = np.asarray(value)
    if array.dtype == object or array.ndim not in (2, 3):
        raise ValueError(bilingual(f"{name}: expected an H x W or H x W x C image, got shape {array.shape}",
                                    f"{_zh(name)}：需要 H x W 或 H x W x C 的图像，收到的形状为 {array.shape}"))
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise ValueError(bilingual(f"{name}: expected 1, 3 or 4 channels, got {array.shape[2]}",
                                    f"{_zh(name)}：需要 1、3 或 4 个通道，收到 {array.shape[2]} 个"))
    height, width = array.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ValueError(bilingual(
            f"{name}: {width} x {height} px is too small; each side must be at least {MIN_IMAGE_SIDE} px",
            f"{_zh(name)}：{width} x {height} 像素太小；每条边至少要有 {MIN_IMAGE_SIDE} 像素",
        ))
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(bilingual(
            f"{name}: {width} x {height} px is over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; please downscale it",
            f"{_zh(name)}：{width} x {height} 像素超过了 {MAX_IMAGE_PIXELS / 1e6:.0f} 百万像素的上限；请先缩小图像",
        ))
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise ValueError(bilingual(
            f"{name}: {width} x {height} px is too elongated; the longer side may be at most {MAX_ASPECT_RATIO} times "
            f"the shorter (1:{MAX_ASPECT_RATIO}); please crop it",
            f"{_zh(name)}：{width} x {height} 像素的图像过于狭长；长边最多只能是短边的 {MAX_ASPECT_RATIO} 倍"
            f"（1:{MAX_ASPECT_RATIO}）；请先裁剪",
        ))
    if max(height, width) > MAX_IMAGE_SIDE:
        raise ValueError(bilingual(
            f"{name}: {width} x {height} px is over the limit of {MAX_IMAGE_SIDE} px a side; please downscale it",
            f"{_zh(name)}：{width} x {height} 像素超过了每边 {MAX_IMAGE_SIDE} 像素的上限；请先缩小图像",
        ))
    if array.ndim == 2:
        array = array[:, :, None]
    array = array[:, :, :3]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError(bilingual(f"{name}: the image holds NaN or infinite values",
                                        f"{_zh(name)}：图像中含有 NaN 或无穷大的值"))
        top = 1.0 if array.max(initial=0) <= 1.0 else (255.0 if array.max() <= 255 else 65535.0)
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, str]:
    """``uint8 [H, W, 3]`` shrunk (bilinear) so its longer side is at most ``max_side``, and a note
    for the summary saying so (``""`` when it already fits)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, ""
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return small, f" (downscaled from {w} × {h} px: at most {max_side} px a side here)"


UNREADABLE_IMAGE = bilingual(
    "image: the file could not be read as an image (it may be truncated, or not an image); "
    "upload a PNG, JPEG, GIF or WebP file",
    "图像：无法把该文件读成图像（文件可能已截断或不是图像）；请上传 PNG、JPEG、GIF 或 WebP 文件")


class SafeImage(gr.Image):
    """``gr.Image`` whose upload decoding errors become a clear message instead of Gradio's generic one.

    Gradio decodes an upload before the event handler runs; a truncated file, a file that is not
    an image, or one over the pixel limit would otherwise end as "the upstream Gradio app has
    raised an exception". The page draws it as an ordinary Image (``is_template``).
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise gr.Error(bilingual(
                f"image: over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (or a decompression bomb); "
                "please downscale it",
                f"图像：超过 {MAX_IMAGE_PIXELS / 1e6:.0f} 百万像素的上限（或是解压炸弹）；请先缩小图像")) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            # One message for every unreadable file, with no path, errno or exception text: a
            # missing server path and an existing file that is not an image must read alike, or
            # the message tells a caller which server paths exist.
            raise gr.Error(UNREADABLE_IMAGE) from None


OUT_OF_MEMORY = bilingual(
    "the GPU ran out of memory: try a smaller image, batch or number of images; the memory of this job "
    "was released, so the next one starts clean",
    "GPU 显存不足：请换用更小的图像、批量或图像数量；本任务占用的显存已释放，下一个任务会从头开始")


def _trim_malloc() -> None:
    """Hand glibc's freed heap back to the system (a no-op where libc is not glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # macOS, Windows, musl: no libc.so.6 or no malloc_trim
        pass


def release_memory() -> None:
    """Give a finished (or failed) heavy job's memory back: Python's garbage, glibc's freed arenas
    and, on CUDA, the allocator's cached blocks.

    A job's tensors are freed when it ends, but glibc keeps the freed pages of its arenas for
    reuse, so the process stayed at 4.58 GB after 768 px style transfers (measured by a hostile test pass);
    ``malloc_trim(0)`` returns them. Cheap (milliseconds) next to any job that needs it.
    """
    import torch

    gc.collect()  # the job's tensors are garbage once its frames are gone
    _trim_malloc()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


_release_memory = release_memory  # the name the out-of-memory path calls (tests patch it)


def _converting(fn: Callable, catch: type[BaseException], convert: Callable[[BaseException], gr.Error]) -> Callable:
    """``fn`` (a function or a generator function) with ``catch`` errors raised as ``convert(err)``;
    a gr.Error passes unchanged."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except catch as err:
                raise convert(err) from None
        return generator

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except catch as err:
            raise convert(err) from None
    return function


def _out_of_memory(err: BaseException) -> gr.Error:
    _release_memory()
    return gr.Error(OUT_OF_MEMORY)


def handles_out_of_memory(fn: Callable) -> Callable:
    """Turn ``torch.OutOfMemoryError`` (CUDA's, raised by any step of ``fn``) into a clear message,
    after releasing the memory, so the next job succeeds. Works for functions and generator functions.

    A generator function is a streamed heavy job (a training, a style transfer): it also gives its
    memory back (:func:`release_memory`) when it ends, however it ends (done, failed, or closed
    because the page went away), so an idle server does not keep a finished job's gigabytes.
    """
    import torch

    converted = _converting(fn, torch.OutOfMemoryError, _out_of_memory)
    if not inspect.isgeneratorfunction(fn):
        return converted  # one-shot inference: glibc's freed heap is reused by the next call

    @functools.wraps(fn)
    def job(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from converted(*args, **kwargs)
        finally:
            release_memory()  # the job's generator has closed: its tensors are garbage now
    return job


def _checked(base: type[gr.components.Component], kind_en: str, kind_zh: str) -> type:
    """``base`` (a Gradio input component) whose payload errors become a message naming the input.

    Gradio checks a value against the component (a slider's range, a radio's choices) before
    the handler runs and words those refusals well; but a value of the wrong type (a string
    for a slider, a number for a table) fails inside that check and ends as Gradio's generic
    "the upstream app has raised an exception". The page draws it as ``base`` (``is_template``).
    """

    class Checked(base):
        is_template = True

        def _refuse(self, payload: Any, err: Exception) -> gr.Error:
            label_en, label_zh = english(self.label) or "input", chinese(self.label) or "输入"
            return gr.Error(bilingual(f"{label_en}: expected {kind_en}, got {str(payload)[:60]!r} "
                                      f"({type(err).__name__})",
                                      f"{label_zh}：需要{kind_zh}，收到 {str(payload)[:60]!r}"))

        @property
        def data_model(self) -> Any:
            # Gradio validates a payload against the data model before preprocess(), outside the
            # try that words errors: a wrong type (a string for a table) is refused here instead.
            # Built once per component: Gradio reads this on every request.
            validated = self.__dict__.get("_validated_model")
            if validated is None:
                model = getattr(super(), "data_model", None)
                if model is None:
                    return None
                component = self

                class Validated(model):
                    @classmethod
                    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
                        try:
                            return model.model_validate(obj, *args, **kwargs)
                        except ValueError as err:  # pydantic's ValidationError
                            raise component._refuse(obj, err) from None

                Validated.__name__ = model.__name__
                validated = self.__dict__["_validated_model"] = Validated
            return validated

        def preprocess(self, payload: Any) -> Any:
            try:
                return super().preprocess(payload)
            except gr.Error:
                raise
            except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
                raise self._refuse(payload, err) from None

    Checked.__name__ = Checked.__qualname__ = base.__name__
    return Checked


Slider = _checked(gr.Slider, "a number", "一个数")
Number = _checked(gr.Number, "a number", "一个数")
Checkbox = _checked(gr.Checkbox, "true or false", "true 或 false")
Radio = _checked(gr.Radio, "one of the choices", "选项之一")
Dropdown = _checked(gr.Dropdown, "one of the choices", "选项之一")
Textbox = _checked(gr.Textbox, "text", "文本")
Dataframe = _checked(gr.Dataframe, "a table (headers and rows of cells)", "一个表格（表头和若干行单元格）")


def shows_errors(fn: Callable) -> Callable:
    """Show a ValueError from ``fn`` (vision_core's ArgumentError, or a panel's parse of a table or a
    text) as a gr.Error toast with its message in both languages (:func:`panels.i18n.with_chinese`).

    Works for functions and generator functions (a streamed job's error ends the stream with it).
    """
    return _converting(fn, ValueError, lambda err: gr.Error(with_chinese(err)))


def parse_floats(text: Any, name: str, low: float, high: float, max_count: int = 10) -> list[float]:
    """``"0.75, 0.5 0.25"`` -> ``[0.75, 0.5, 0.25]``, each in ``(low, high]``, or ValueError saying why."""
    if isinstance(text, (int, float)):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(bilingual(f"{name}: expected numbers separated by commas, got {type(text).__name__}",
                                    f"{_zh(name)}：需要用逗号分隔的数字，收到的是 {type(text).__name__}"))
    parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
    if not parts:
        raise ValueError(bilingual(f"{name}: give at least one number, e.g. 0.5", f"{_zh(name)}：请至少给出一个数字，例如 0.5"))
    if len(parts) > max_count:
        raise ValueError(bilingual(f"{name}: at most {max_count} values, got {len(parts)}",
                                    f"{_zh(name)}：最多 {max_count} 个值，收到 {len(parts)} 个"))
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(bilingual(f"{name}: {part[:20]!r} is not a number",
                                        f"{_zh(name)}：{part[:20]!r} 不是数字")) from None
        if not (low < value <= high):
            raise ValueError(bilingual(f"{name}: each value must be in ({low:g}, {high:g}], got {value:g}",
                                        f"{_zh(name)}：每个值都必须在 ({low:g}, {high:g}] 内，收到 {value:g}"))
        values.append(value)
    return values


def rerun_on_picture_changes(fn: Callable, inputs: Sequence[Any], outputs: Sequence[Any], image: gr.Image,
                             example: gr.Dropdown, pick: Callable[[str], np.ndarray],
                             controls: Sequence[gr.components.Component] = ()) -> None:
    """Wire ``fn`` (a section's render, whose API event is wired apart) to run again, outside the API,
    when a control moves (the last position only), a picture is uploaded or ``pick`` puts the
    chosen example in ``image``.

    The controls and the upload share one event, so that one run never overtakes another: as two
    events, a slow run for an upload finished after the run for a control moved meanwhile, and its
    older answer stayed on the page. An upload also empties ``example``, which would otherwise
    still name the example it replaced; ``pick`` listens to ``example.input`` (a person's choice
    only), so emptying it loads nothing."""
    gr.on([*(control.input for control in controls), image.upload], fn, inputs, outputs, api_visibility="private",
          trigger_mode="always_last")
    image.upload(lambda: None, None, example, api_visibility="private")
    example.input(pick, example, image, api_visibility="private").then(fn, inputs, outputs, api_visibility="private")


@shows_errors
def example_photo(name: str) -> np.ndarray:
    """An offline example photo by name, for an example dropdown's event."""
    from vision_core.examples import load_example

    return load_example(name)


# Display formulas between $$ … $$, inline ones between \( … \); a lone $ stays a dollar sign
# (a path such as $TORCH_HOME in a message must not start a formula).
LATEX_DELIMITERS = [{"left": "$$", "right": "$$", "display": True}, {"left": "\\(", "right": "\\)", "display": False}]


def try_this(en: str, zh: str, **kwargs: Any) -> gr.Markdown:
    """A view's one "Try this" line: a change for the learner to make, and a prediction to check
    before seeing the answer (docs/ARCHITECTURE.md, "Teaching")."""
    # "**试一试**：" and not "**试一试：**": CommonMark does not close bold after a full-width colon
    # followed by a letter, so the page showed the asterisks.
    return gr.Markdown(tr(f"**Try this:** {en}", f"**试一试**：{zh}"), elem_classes=["vl-try"],
                       latex_delimiters=LATEX_DELIMITERS, **kwargs)


def formula(value: str = "", **kwargs: Any) -> gr.Markdown:
    """A Markdown that typesets a view's formula (``$$ … $$``), usually with the current numbers
    filled in by the view's handler, which returns the new text as this component's value."""
    return gr.Markdown(value, elem_classes=["vl-formula"], latex_delimiters=LATEX_DELIMITERS, **kwargs)
