"""Tokenizers for the text tasks: characters, words, WordPiece/BPE trained here, or a pretrained one.

`make_tokenizer(spec, texts)` picks by name: "chars", "words", "wordpiece", "bpe", or anything else as
a Hugging Face hub id or local directory (AutoTokenizer). Trained WordPiece/BPE tokenizers are cached
under $XDG_CACHE_HOME/workbench/tokenizers, keyed by a hash of the corpus and settings, so a run
trains one only the first time.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import torch

from workbench.errors import ConfigError
from workbench.paths import user_path

BUILTIN = ("chars", "words", "wordpiece", "bpe")
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "tokenizers"


def _pad_batch(rows: list[list[int]], seq_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), seq_len), dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:seq_len]
        if row:
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
    return ids, mask


class CharTokenizer:
    """One id per character seen in the corpus; id 0 is padding. Unknown characters are dropped."""

    name = "chars"
    pad_id = 0

    def __init__(self, text: str):
        self.itos = ["\x00"] + sorted(set(text) - {"\x00"})
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        return [stoi[ch] for ch in text if ch in stoi]

    def encode_stream(self, text: str) -> torch.Tensor:
        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids if 0 < i < len(itos))

    def encode_batch(self, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad_batch([self.encode(t) for t in texts], seq_len, self.pad_id)


class WordTokenizer:
    """Words and punctuation (regex), the `vocab_size` most frequent in the training texts; [PAD]=0, [UNK]=1."""

    name = "words"
    pad_id = 0
    unk_id = 1

    def __init__(self, texts: Iterable[str], vocab_size: int):
        counts = Counter(token for text in texts for token in WORD_PATTERN.findall(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(0, vocab_size - 2)]
        self.itos = ["[PAD]", "[UNK]"] + [token for token, _ in ranked]
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(token, self.unk_id) for token in WORD_PATTERN.findall(text)]

    def encode_stream(self, text: str) -> torch.Tensor:
        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.itos[i] for i in ids if 0 < i < len(self.itos))

    def encode_batch(self, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad_batch([self.encode(t) for t in texts], seq_len, self.pad_id)


class TrainedTokenizer:
    """A `tokenizers.Tokenizer` (WordPiece with [CLS] ... [SEP], or byte-level BPE) trained on our texts."""

    def __init__(self, tokenizer, name: str, path: Path):
        self.tokenizer = tokenizer
        self.name = name
        self.path = path
        self.vocab_size = tokenizer.get_vocab_size()
        self.pad_id = tokenizer.token_to_id("[PAD]" if name == "wordpiece" else "<pad>")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_stream(self, text: str) -> torch.Tensor:
        lines = text.splitlines(keepends=True)
        chunks = ["".join(lines[i : i + 200]) for i in range(0, len(lines), 200)]
        ids: list[int] = []
        for encoding in self.tokenizer.encode_batch(chunks, add_special_tokens=False):
            ids.extend(encoding.ids)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def encode_batch(self, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        rows = []
        for encoding in encodings:
            ids = encoding.ids
            if len(ids) > seq_len and self.name == "wordpiece":  # keep the closing [SEP]
                ids = ids[: seq_len - 1] + [ids[-1]]
            rows.append(ids)
        return _pad_batch(rows, seq_len, self.pad_id)


class PretrainedTokenizer:
    """A Hugging Face tokenizer loaded with AutoTokenizer (hub id or local directory)."""

    def __init__(self, tokenizer, name: str):
        self.tokenizer = tokenizer
        self.name = name
        self.vocab_size = len(tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_stream(self, text: str) -> torch.Tensor:
        lines = text.splitlines(keepends=True)
        ids: list[int] = []
        for i in range(0, len(lines), 200):
            ids.extend(self.encode("".join(lines[i : i + 200])))
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def encode_batch(self, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.tokenizer(list(texts), truncation=True, max_length=seq_len, add_special_tokens=True)["input_ids"]
        return _pad_batch(rows, seq_len, self.pad_id)


def _corpus_key(kind: str, vocab_size: int, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{kind}:{vocab_size}:{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()[:20]


def _train(kind: str, texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "wordpiece":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
        tokenizer.train_from_iterator(texts, trainer=trainer)
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
        )
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def trained_tokenizer(kind: str, texts: list[str], vocab_size: int) -> TrainedTokenizer:
    """Train (or load from the cache) a WordPiece or byte-level BPE tokenizer on these texts."""
    from tokenizers import Tokenizer

    path = cache_dir() / f"{kind}-{vocab_size}-{_corpus_key(kind, vocab_size, texts)}.json"
    if path.is_file():
        try:
            return TrainedTokenizer(Tokenizer.from_file(str(path)), kind, path)
        except Exception:  # a damaged cache entry: train again
            pass
    tokenizer = _train(kind, texts, vocab_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tokenizer.save(str(tmp))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs retraining next time
    return TrainedTokenizer(tokenizer, kind, path)


def pretrained_tokenizer(spec: str) -> PretrainedTokenizer:
    """AutoTokenizer.from_pretrained, with a one-line error when it can't be found or fetched."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        local = user_path(spec).exists()
        where = (f"the local directory {spec!r} has no usable tokenizer" if local else
                 f"{spec!r} is not a local directory and could not be fetched from the Hugging Face hub (offline?)")
        raise ConfigError(f"data.args.tokenizer: {where}; built-in tokenizers: {', '.join(BUILTIN)} "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})") from None
    return PretrainedTokenizer(tokenizer, spec)


def make_tokenizer(spec: str, texts: list[str], vocab_size: int = 4000):
    """A tokenizer by name, built from (or trained on) `texts` where it needs them."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"tokenizer must be one of {', '.join(BUILTIN)} or a hub id / local directory")
    if spec == "chars":
        return CharTokenizer("".join(texts))
    if spec in ("words", "wordpiece", "bpe"):
        if not 16 <= vocab_size <= 1_000_000:
            raise ValueError("vocab_size must be between 16 and 1,000,000")
        if spec == "words":
            return WordTokenizer(texts, vocab_size)
        return trained_tokenizer(spec, texts, vocab_size)
    return pretrained_tokenizer(spec)
