"""Text the Python installation ships: its standard library's own source files.

Two tasks, both deterministic for a given Python version and bounded in size, needing no network:
- `stdlib_chars`: language modelling over the source of a fixed list of stdlib modules (gpt-char and
  the GPT-2 presets), or over the English reference documentation pydoc ships (`source = "docs"`);
- `stdlib_lines`: classify a line of code by the stdlib package it comes from (asyncio, email, ...).
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sysconfig
from pathlib import Path

from workbench.data.base import DataBundle
from workbench.data.batched import classification_bundle, lm_bundle
from workbench.data.vocab import make_tokenizer

# Pure-Python modules present from 3.10 on; read in this order, up to max_chars.
CORPUS_MODULES = [
    "textwrap", "string", "functools", "heapq", "bisect", "copy", "queue", "shlex", "fnmatch", "glob",
    "json.encoder", "json.decoder", "csv", "pprint", "fractions", "random", "statistics", "contextlib",
    "dataclasses", "enum", "calendar", "argparse", "difflib", "tokenize", "ast", "configparser",
    "collections", "tempfile", "shutil", "threading", "subprocess", "gzip", "zipfile", "tarfile",
]
LINE_PACKAGES = ["asyncio", "email", "unittest", "xml", "multiprocessing", "http"]
_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__"}


def module_source(name: str) -> str | None:
    """The source text of a stdlib module (found without importing it), or None if not shipped as .py."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec else None
    if not origin or not origin.endswith(".py"):
        return None
    try:
        return Path(origin).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def stdlib_corpus(modules: list[str], max_chars: int) -> list[tuple[str, str]]:
    """(module, source) pairs in the given order, the total cut at `max_chars`."""
    texts, total = [], 0
    for name in modules:
        if total >= max_chars:
            break
        source = module_source(name)
        if source:
            source = source[: max_chars - total]
            texts.append((name, source))
            total += len(source)
    if not texts:
        raise ValueError(f"none of these stdlib modules has Python source here: {', '.join(modules)}")
    return texts


def docs_corpus(max_chars: int) -> list[tuple[str, str]]:
    """(topic, text) pairs of the documentation `help("TOPIC")` shows (pydoc_data.topics), sorted by topic,
    the total cut at `max_chars`: English prose about the language, with its grammar and code examples."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ValueError("this Python ships no pydoc_data.topics; use source = 'code'") from None
    texts, total = [], 0
    for name in sorted(topics):
        if total >= max_chars:
            break
        text = topics[name][: max_chars - total]
        texts.append((name, text))
        total += len(text)
    return texts


def split_sources(corpus: list[tuple[str, str]], val_fraction: float) -> tuple[list[str], list[str]]:
    """Train and val parts of every module: the last `val_fraction` of each source is val."""
    train_parts, val_parts = [], []
    for _, source in corpus:
        cut = int(len(source) * (1 - val_fraction))
        train_parts.append(source[:cut])
        val_parts.append(source[cut:])
    return train_parts, val_parts


def stdlib_train_text(max_chars: int = 600_000, val_fraction: float = 0.1) -> str:
    """The train part of the default `stdlib_chars` corpus, e.g. to pre-train a base model on (never its val)."""
    return "\n".join(split_sources(stdlib_corpus(CORPUS_MODULES, max_chars), val_fraction)[0])


def stdlib_chars(
    seed: int,
    modules: list[str] | None = None,
    max_chars: int = 600_000,
    block_size: int = 128,
    stride: int = 1,
    val_fraction: float = 0.1,
    tokenizer: str = "chars",
    vocab_size: int = 2048,
    format: str = "ids",
    prompt: str | None = None,
    source: str = "code",
) -> DataBundle:
    """Next-token prediction over stdlib source. The last `val_fraction` of every module is the val text.

    source: "code" (the modules' source) or "docs" (pydoc's English documentation topics, split the same
    way per topic; `modules` does not apply). prompt: the text LM samples start from ("def " / "The ").

    tokenizer: "chars" (default), "bpe" (byte-level, trained here), or a hub id / local dir (a pretrained
    model's tokenizer). format: "ids" for our GPT, "hf" for Hugging Face causal LMs.
    """
    if not 0 < val_fraction < 0.5:
        raise ValueError("val_fraction must be between 0 and 0.5")
    if max_chars < 1000:
        raise ValueError("max_chars must be at least 1000")
    if source not in ("code", "docs"):
        raise ValueError(f"source must be 'code' or 'docs', not {source!r}")
    if source == "docs":
        corpus = docs_corpus(max_chars)
    else:
        corpus = stdlib_corpus(modules or CORPUS_MODULES, max_chars)
    train_parts, val_parts = split_sources(corpus, val_fraction)
    train_text, val_text = "\n".join(train_parts), "\n".join(val_parts)
    tok = make_tokenizer(tokenizer, [train_text, val_text] if tokenizer == "chars" else train_parts, vocab_size)
    return lm_bundle(tok.encode_stream(train_text), tok.encode_stream(val_text), tok, block_size, stride, format,
                     seed, prompt if prompt is not None else ("The " if source == "docs" else "def "),
                     extra={"source": source, "modules" if source == "code" else "topics": [name for name, _ in corpus]})


def package_lines(package: str, min_chars: int) -> set[str]:
    """Distinct stripped lines of code (no comments, at least `min_chars` long) in a stdlib package."""
    root = Path(sysconfig.get_paths()["stdlib"]) / package
    files = sorted(root.rglob("*.py")) if root.is_dir() else []
    if not files:
        source = module_source(package)
        if source is None:
            raise ValueError(f"stdlib package {package!r} has no Python source here")
        sources = [source]
    else:
        sources = []
        for path in files:
            if _SKIP_DIRS & set(path.relative_to(root).parts[:-1]):
                continue
            try:
                sources.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
    lines = set()
    for source in sources:
        for line in source.splitlines():
            line = line.strip()
            if len(line) >= min_chars and not line.startswith("#"):
                lines.add(line)
    return lines


def _in_val(line: str, val_fraction: float) -> bool:
    """A fixed split by content hash: the same line is always on the same side, across runs and seeds."""
    bucket = int.from_bytes(hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    return bucket / 2**64 < val_fraction


def stdlib_lines(
    seed: int,
    packages: list[str] | None = None,
    max_per_class: int = 3000,
    min_chars: int = 12,
    val_fraction: float = 0.15,
    seq_len: int = 48,
    tokenizer: str = "words",
    vocab_size: int = 5000,
    format: str = "ids",
) -> DataBundle:
    """Which stdlib package does this line of code come from? Balanced classes; chance = 1 / len(packages).

    Lines found in more than one package are dropped. The data does not depend on the seed (the
    split is by content hash), so runs with different seeds see the same task.
    """
    packages = list(packages or LINE_PACKAGES)
    if len(packages) < 2 or len(set(packages)) != len(packages):
        raise ValueError("packages must name at least two different stdlib packages")
    if not 0 < val_fraction < 0.5:
        raise ValueError("val_fraction must be between 0 and 0.5")
    if max_per_class < 10:
        raise ValueError("max_per_class must be at least 10")
    per_package = {name: package_lines(name, min_chars) for name in packages}
    seen: dict[str, int] = {}
    for lines in per_package.values():
        for line in lines:
            seen[line] = seen.get(line, 0) + 1
    shuffler = random.Random(1234)  # fixed: the dataset is the same for every run
    count = min(max_per_class, *(sum(1 for line in lines if seen[line] == 1) for lines in per_package.values()))
    if count < 10:
        raise ValueError(f"too few distinct lines per package ({count}); choose bigger packages")
    train_texts, train_labels, val_texts, val_labels = [], [], [], []
    for label, name in enumerate(packages):
        unique = sorted(line for line in per_package[name] if seen[line] == 1)
        shuffler.shuffle(unique)
        for line in unique[:count]:
            if _in_val(line, val_fraction):
                val_texts.append(line)
                val_labels.append(label)
            else:
                train_texts.append(line)
                train_labels.append(label)
    # Interleave classes so the first eval batches hold every class.
    order = list(range(len(val_texts)))
    random.Random(4321).shuffle(order)
    val_texts = [val_texts[i] for i in order]
    val_labels = [val_labels[i] for i in order]
    tok = make_tokenizer(tokenizer, train_texts, vocab_size)
    return classification_bundle((train_texts, train_labels), (val_texts, val_labels), packages, tok, seq_len, format,
                                 extra={"lines_per_class": count})
