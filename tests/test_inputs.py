"""Files and names from outside, through the commands that read them (issue 33, items 4, 7, 8
and 13): `predict` refuses in one line, exit 1, whatever is not a small regular PNG or PGM
file holding some ink, and returns at once; text from run files and folder names reaches
the terminal without escape sequences and is never read as markup."""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import threading
import time
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mnist_tui import cli
from mnist_tui.core.preprocess import MAX_FILE_BYTES, MAX_SIDE, paint, to_mnist
from mnist_tui.core.store import RunWriter
from mnist_tui.present.text import printable
from tests.builders import stub_checkpoint, untrained_v2_run

# What a terminal would act on: C0 controls but tab and newline, DEL, C1 (ESC among the C0).
CONTROLS = {chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return untrained_v2_run(tmp_path_factory.mktemp("inputs") / "runs")


def cli_result(*argv: str) -> tuple[int, str, str]:
    """`mnist-tui ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def predict(run: Path, image: Path | str) -> tuple[int, str, str]:
    return cli_result("predict", run.name, str(image), "--runs", str(run.parent))


def assert_one_line(result: tuple[int, str, str], *words: str) -> str:
    """Exit 1, nothing on stdout, one line on stderr naming the command (no traceback)."""
    code, out, err = result
    assert code == 1 and out == "", result
    assert err.startswith("mnist-tui ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(word in err for word in words), err
    return err


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A 1-bit black PNG of width x height whose pixel data holds `rows` rows (all of them by
    default: a real file, which zlib makes small)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    rows = height if rows is None else rows
    body = b"".join(packer.compress(row * min(1000, rows - done)) for done in range(0, rows, 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def pgm(pixels: torch.Tensor) -> bytes:
    """uint8 (H, W) grey as a binary PGM."""
    h, w = pixels.shape
    return f"P5 {w} {h} 255\n".encode() + pixels.to(torch.uint8).numpy().tobytes()


def a_one_on_paper(width: int = 64, height: int = 64) -> torch.Tensor:
    """A dark upright stroke on white paper."""
    paper = torch.full((height, width), 255, dtype=torch.uint8)
    paper[height // 5 : height - height // 5, width // 2 - 3 : width // 2 + 3] = 20
    return paper


# Issue 33, item 7: what predict reads


def test_a_30000_square_one_bit_png_of_109_kb_is_refused_before_decoding(run, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png(30000, 30000))
    assert bomb.stat().st_size < 200_000  # 900 million pixels in about 109 KB
    assert_one_line(predict(run, bomb), "bomb.png is over", "pixels", f"at most {MAX_SIDE}x{MAX_SIDE}")


def test_a_pgm_header_of_60000_square_is_refused(run, tmp_path):
    (tmp_path / "huge.pgm").write_bytes(b"P5 60000 60000 255\n" + bytes(100))
    assert_one_line(predict(run, tmp_path / "huge.pgm"), "huge.pgm is over", "pixels")


def test_a_12000_square_png_is_refused_by_its_size_not_decoded(run, tmp_path):
    # It decoded to 2.6 GB. Refused from the header, with the size in words.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (tmp_path / "large.png").write_bytes(png(12000, 12000))
    assert_one_line(predict(run, tmp_path / "large.png"), "large.png is 12000x12000 pixels", f"at most {MAX_SIDE}x{MAX_SIDE}")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: it held no 144 MB of pixels


def test_pictures_are_read_up_to_the_side_cap_and_refused_past_it(run, tmp_path):
    (tmp_path / "wide.pgm").write_bytes(pgm(a_one_on_paper(MAX_SIDE, 48)))
    code, out, err = predict(run, tmp_path / "wide.pgm")
    assert code == 0 and err == "" and len(out.splitlines()) == 4
    (tmp_path / "wider.pgm").write_bytes(pgm(a_one_on_paper(MAX_SIDE + 1, 48)))
    assert_one_line(predict(run, tmp_path / "wider.pgm"), f"wider.pgm is {MAX_SIDE + 1}x48 pixels")


def test_a_named_pipe_called_fifo_png_is_refused_at_once(run, tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    results: list[tuple[int, str, str]] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: results.append(predict(run, fifo)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    elapsed = time.monotonic() - started
    if worker.is_alive():  # blocked opening or reading the pipe: a writer's end lets it go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail("predict blocked on a named pipe")
    assert elapsed < 2
    assert_one_line(results[0], "fifo.png is a named pipe, not a picture file")


@pytest.mark.parametrize("kind", ["a folder", "a device"])
def test_what_is_not_a_regular_file_is_refused(run, tmp_path, kind):
    path = {"a folder": tmp_path, "a device": Path("/dev/zero")}[kind]  # /dev/zero would never end
    if not path.exists():
        pytest.skip(f"no {path} here")
    assert_one_line(predict(run, path), f"{path} is {kind}, not a picture file")


def test_a_file_over_the_size_cap_is_refused_unread(run, tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(png(28, 28))
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    assert_one_line(predict(run, big), "big.png is 64 MiB", f"at most {MAX_FILE_BYTES // 2**20} MiB")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.png", b"", "empty.png is empty"),
        ("notes.png", b"not a picture", "cannot read"),
        ("cut.png", png(64, 64)[:45], "cannot read"),  # the header, then the data cut short
        ("header.pgm", b"P5 64 64 255\n" + bytes(10), "cannot read"),
        ("zero.pgm", b"P5 0 0 255\n", "cannot read"),
    ],
)
def test_a_damaged_or_empty_picture_is_one_line(run, tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    assert_one_line(predict(run, tmp_path / name), name, words)


def test_only_png_and_the_pgm_family_are_decoded(run, tmp_path):
    # Each decoder Pillow has is more code reading untrusted bytes (EPS runs Ghostscript).
    Image.fromarray(a_one_on_paper().numpy()).save(tmp_path / "one.gif")
    assert_one_line(predict(run, tmp_path / "one.gif"), "one.gif: it is not a PNG or PGM picture")
    Image.fromarray(a_one_on_paper().numpy()).convert("RGB").save(tmp_path / "one.ppm")
    assert predict(run, tmp_path / "one.ppm")[0] == 0


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=600).map(lambda tail: png(40, 40)[:41] + tail),  # a PNG's signature and header
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.binary(max_size=600)).map(lambda t: f"P5 {t[0]} {t[1]} 255\n".encode() + t[2]),
        st.tuples(st.integers(0, 400), st.integers(0, 255)).map(lambda t: _flipped(png(48, 48), *t)),
    ),
    st.sampled_from(["IMAGE.png", "IMAGE.pgm"]),
)
def test_any_bytes_as_a_picture_give_exit_0_or_1_and_one_line(run, tmp_path_factory, content, name):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path = tmp_path_factory.getbasetemp() / name
    path.write_bytes(content)
    code, out, err = predict(run, path)
    if code == 0:
        assert err == "" and len(out.splitlines()) == 4
    else:
        assert_one_line((code, out, err))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KiB


def _flipped(content: bytes, at: int, value: int) -> bytes:
    """content with one byte (past the signature) replaced."""
    at = 8 + at % (len(content) - 8)
    return content[:at] + bytes([value]) + content[at + 1 :]


# Issue 33, item 8: a blank picture holds no digit


@pytest.mark.parametrize(
    "name",
    ["white", "black", "grey", "almost white", "white with a speck", "grainy grey paper"],
)
def test_a_blank_picture_holds_no_ink_and_is_not_classified(run, tmp_path, name):
    noise = torch.randn(96, 96, generator=torch.Generator().manual_seed(0))
    pixels = {
        "white": torch.full((96, 96), 255.0),
        "black": torch.zeros(96, 96),
        "grey": torch.full((96, 96), 128.0),
        "almost white": 253 + noise.clamp(-2, 2),  # a scan's faint unevenness
        "white with a speck": torch.full((96, 96), 255.0).index_put_((torch.tensor([40, 41]), torch.tensor([50, 50])), torch.tensor(0.0)),
        "grainy grey paper": 230 + 15 * noise,
    }[name]
    Image.fromarray(pixels.clamp(0, 255).round().to(torch.uint8).numpy()).save(tmp_path / "blank.png")
    assert_one_line(predict(run, tmp_path / "blank.png"), "blank.png holds no ink", "no digit to read")


def test_a_stroke_on_paper_is_still_classified(run, tmp_path):
    paper = Image.new("L", (80, 80), 235)
    ImageDraw.Draw(paper).line([(30, 15), (50, 15), (36, 65)], fill=30, width=5)  # a 7
    paper.save(tmp_path / "seven.png")
    code, out, err = predict(run, tmp_path / "seven.png")
    assert code == 0 and err == ""
    first, *top = out.splitlines()
    assert first.startswith(f"{tmp_path / 'seven.png'}: ") and f"(run {run.name}, v2, epoch 1" in first and len(top) == 3


def test_the_draw_pad_empty_or_faintly_erased_holds_no_ink_and_one_touch_does():
    pad = [[0.0] * 28 for _ in range(28)]
    assert not to_mnist(torch.tensor(pad)).any()  # the Draw screen says "Draw a digit on the pad."
    paint(pad, 14, 14)
    assert to_mnist(torch.tensor(pad)).any()  # a single touch is still read, as before
    faint = [[0.05 if (r + c) % 7 == 0 else 0.0 for c in range(28)] for r in range(28)]
    assert not to_mnist(torch.tensor(faint)).any()  # an eraser's leftovers


# Issue 33, items 4 and 13: text from files and folder names


def v2_run(runs_dir: Path, name: str, model: str = "v2", reason: str | None = None) -> Path:
    """A stopped run folder called `name` whose config names `model`, with an untrained v2's
    weights and a test pass over the first 64 test images."""
    from mnist_tui.core.versions import get_version

    torch.manual_seed(0)
    writer = RunWriter.create(runs_dir, model, {"config": {"model": model, "recipe": {"epochs": 1}, "test_limit": 64}}, name=name)
    writer.save_checkpoint(stub_checkpoint(1, get_version("v2").build().state_dict(), {"model": model}))
    writer.close("failed" if reason else "stopped", reason)
    return writer.path


def test_eval_prints_a_run_named_like_markup_as_it_is(tmp_path):
    v2_run(tmp_path / "runs", "plain [red]red")
    code, out, err = cli_result("eval", "plain [red]red", "--runs", str(tmp_path / "runs"))
    assert code == 0 and err == ""
    assert out.startswith("run plain [red]red: v2 · epoch 1 · ")
    code, out, _ = cli_result("eval", "plain [red]red", "--runs", str(tmp_path / "runs"), "--json")
    assert code == 0 and json.loads(out)["run"] == "plain [red]red"


ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x9b31m\r"


def test_escape_sequences_in_run_files_and_names_never_reach_the_terminal(run, tmp_path):
    runs = tmp_path / "runs"
    v2_run(runs, f"evil{ESCAPES}run", model=f"v2{ESCAPES}", reason=f"it broke{ESCAPES} badly\nthere")
    code, out, err = cli_result("runs", "--runs", str(runs))
    assert code == 0 and err == "" and not CONTROLS & set(out)
    assert "evilrun" in out and "it broke badly there" in out
    Image.fromarray(a_one_on_paper().numpy()).save(tmp_path / "one.png")
    for command in ("eval", "predict"):  # its model is no version: an error naming it
        image = [str(tmp_path / "one.png")] if command == "predict" else []
        err = assert_one_line(cli_result(command, "evil", *image, "--runs", str(runs)), "evilrun")
        assert not CONTROLS & set(err[:-1])
    Image.fromarray(a_one_on_paper().numpy()).save(tmp_path / f"one{ESCAPES}.png")
    code, out, err = predict(run, tmp_path / f"one{ESCAPES}.png")
    assert code == 0 and err == "" and out.startswith(f"{tmp_path / 'one.png'}: ") and not CONTROLS & set(out)


def test_a_blank_picture_named_with_escapes_is_named_without_them(run, tmp_path):
    Image.new("L", (32, 32), 255).save(tmp_path / f"blank{ESCAPES}.png")
    err = assert_one_line(predict(run, tmp_path / f"blank{ESCAPES}.png"), "blank.png holds no ink")
    assert not CONTROLS & set(err[:-1])


@given(st.text())
def test_printable_leaves_no_control_character(text):
    assert not CONTROLS & set(printable(text))
    line = printable(text, one_line=True)
    assert not CONTROLS & set(line) and "\n" not in line and "\t" not in line


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs"))))
def test_printable_keeps_ordinary_text_as_it_is(text):
    assert printable(text) == text == printable(text, one_line=True)


@pytest.mark.parametrize("text", ["plain [red]red", "Müller’s v2 [bold]", "数字 7 · 99.4%", "tab\tand\nnewline"])
def test_printable_keeps_brackets_non_ascii_tabs_and_newlines(text):
    assert printable(text) == text
