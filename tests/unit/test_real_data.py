"""The real-data and real-weights paths, on small files and tiny models the tests write themselves.

No network: torchvision reads MNIST files written here, `datasets` reads local csv/json/text, and
`from_pretrained` loads tiny models saved with `save_pretrained`. Fetching what isn't there must be a
one-line ConfigError (exit 2 from the CLI), never a traceback.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request

import pytest
import torch

from support import quick_preset, run_cli
from workbench.errors import ConfigError

TINY_TRAIN = {"train.max_steps": 3, "train.eval_batches": 1, "train.threads": 1, "train.probe_every": 0,
              "train.batch_size": 8}


def train(store, name: str, **overrides):
    from workbench.training.trainer import Trainer

    trainer = Trainer(quick_preset(name, **{**TINY_TRAIN, **overrides}), store)
    result = trainer.run()
    return trainer, result


def completed(trainer, result):
    assert result.status == "completed", (result.status, result.reason, result.errors, result.traceback)
    return trainer


def setup_error(trainer, result) -> str:
    """The one-line problem of a run that could not be set up (what the CLI prints before exit 2)."""
    assert result.status == "invalid", (result.status, result.reason, result.traceback)
    assert result.run_id is None  # nothing recorded
    message = "; ".join(result.errors)
    assert "\n" not in message and "Traceback" not in message
    return message


def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import torch.hub

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


# -- torchvision ------------------------------------------------------------------------------
def write_mnist(root, n_train: int = 64, n_test: int = 32):
    """MNIST's raw idx files, as torchvision expects them under root/MNIST/raw: class k is a bright k-th band."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = (torch.rand(n, 28, 28, generator=generator) * 60).to(torch.uint8)
        for i, label in enumerate(labels.tolist()):
            images[i, 2 * label + 4 : 2 * label + 7, :] = 250
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.to(torch.uint8).numpy().tobytes())


def test_torchvision_mnist_from_local_files(store, tmp_path):
    write_mnist(tmp_path / "data")
    trainer = completed(*train(store, "cnn-shapes", **{
        "data.kind": "torchvision", "data.args": {"name": "MNIST", "root": str(tmp_path / "data"), "download": False},
        "model.args.width_multiplier": 0.25}))
    assert trainer.info.input_shape == (1, 28, 28) and trainer.info.num_classes == 10
    assert len(trainer.train_source.dataset) == 64 and len(trainer.val_data) == 32


def test_torchvision_upscaled_for_resnet(store, tmp_path):
    write_mnist(tmp_path / "data")
    trainer = completed(*train(store, "resnet18-transfer", **{
        "data.kind": "torchvision", "train.max_steps": 1, "model.args.strategy": "head", "optim.group_lr": {},
        "data.args": {"name": "MNIST", "root": str(tmp_path / "data"), "download": False, "image_size": 32,
                      "train_size": 16, "val_size": 8}}))
    assert trainer.info.input_shape == (1, 32, 32)


def test_torchvision_offline_download_is_a_clear_error(store, tmp_path, monkeypatch):
    no_network(monkeypatch)
    message = setup_error(*train(store, "cnn-shapes", **{
        "data.kind": "torchvision", "data.args": {"name": "MNIST", "root": str(tmp_path / "empty")}}))
    assert "torchvision MNIST could not be downloaded" in message


def test_torchvision_missing_without_download_says_how_to_fetch(store, tmp_path):
    message = setup_error(*train(store, "cnn-shapes", **{
        "data.kind": "torchvision", "data.args": {"name": "CIFAR10", "root": str(tmp_path), "download": False}}))
    assert "not found" in message and "download = true" in message


def test_torchvision_unknown_name(store):
    message = setup_error(*train(store, "cnn-shapes", **{"data.kind": "torchvision", "data.args": {"name": "ImageNet"}}))
    assert "unknown torchvision dataset 'ImageNet'" in message


# -- image folders ----------------------------------------------------------------------------
def write_image_folder(root, per_class: int = 6):
    from PIL import Image

    for index, name in enumerate(["cats", "dogs"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour = (200, 40 + 10 * i, 40) if index == 0 else (40, 40 + 10 * i, 200)
            Image.new("RGB", (20 + i, 24), colour).save(folder / f"{name}-{i}.png")


def test_image_folder_trains_with_a_held_out_split(store, tmp_path):
    write_image_folder(tmp_path / "pets")
    trainer = completed(*train(store, "cnn-shapes", **{
        "data.kind": "image_folder", "data.args": {"root": str(tmp_path / "pets"), "image_size": 16},
        "model.args.width_multiplier": 0.25}))
    assert trainer.info.extra["classes"] == ["cats", "dogs"] and trainer.info.input_shape == (3, 16, 16)
    assert len(trainer.train_source.dataset) + len(trainer.val_data) == 12 and len(trainer.val_data) >= 1


def test_image_folder_with_its_own_val_folder(store, tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "val", per_class=2)
    trainer = completed(*train(store, "cnn-shapes", **{
        "data.kind": "image_folder", "model.args.width_multiplier": 0.25,
        "data.args": {"root": str(tmp_path / "train"), "val_root": str(tmp_path / "val"), "image_size": 16}}))
    assert len(trainer.val_data) == 4 and len(trainer.train_source.dataset) == 12


@pytest.mark.parametrize("args, expected", [
    ({"root": "no/such/folder"}, "is not a directory"),
    ({}, "root is required"),
])
def test_image_folder_bad_options(store, args, expected):
    message = setup_error(*train(store, "cnn-shapes", **{"data.kind": "image_folder", "data.args": args}))
    assert expected in message


def test_an_image_folder_root_too_big_to_look_through_is_one_line_naming_the_field(store, tmp_path, monkeypatch):
    # `root = "/"` would have ImageFolder walk the whole disk: the --data scan's bound holds here too
    import workbench.data.source as source

    write_image_folder(tmp_path / "home" / "pets")
    for i in range(40):
        (tmp_path / "home" / f"project{i}").mkdir()
    monkeypatch.setattr(source, "MAX_SCAN", 30)
    message = setup_error(*train(store, "cnn-shapes", **{"data.kind": "image_folder",
                                                          "data.args": {"root": str(tmp_path / "home")}}))
    assert message.startswith("data.args (image_folder): root") and "more than 30 files and folders" in message
    completed(*train(store, "cnn-shapes", **{  # the folder that holds only the images is under the bound
        "data.kind": "image_folder", "data.args": {"root": str(tmp_path / "home" / "pets"), "image_size": 16},
        "model.args.width_multiplier": 0.25}))


def test_a_symlink_deep_in_an_image_folder_is_walked_under_the_bound_as_imagefolder_would(store, tmp_path,
                                                                                          monkeypatch):
    """ImageFolder follows symlinked folders at every depth: a class folder holding a link to a big tree
    (or a loop) is refused in one line before ImageFolder walks it; a link to a small folder trains."""
    import workbench.data.source as source

    write_image_folder(tmp_path / "pets")
    big = tmp_path / "elsewhere"
    for i in range(40):
        (big / f"d{i}").mkdir(parents=True)
    first_class = sorted(p for p in (tmp_path / "pets").iterdir() if p.is_dir())[0]
    (first_class / "more").symlink_to(big, target_is_directory=True)
    monkeypatch.setattr(source, "MAX_SCAN", 45)
    message = setup_error(*train(store, "cnn-shapes", **{"data.kind": "image_folder",
                                                          "data.args": {"root": str(tmp_path / "pets")}}))
    assert message.startswith("data.args (image_folder): root") and "symlinked folders followed" in message
    (first_class / "more").unlink()
    (first_class / "loop").symlink_to(first_class, target_is_directory=True)  # a link loop
    message = setup_error(*train(store, "cnn-shapes", **{"data.kind": "image_folder",
                                                          "data.args": {"root": str(tmp_path / "pets")}}))
    assert "more than 45 files and folders" in message
    (first_class / "loop").unlink()
    (first_class / "few").symlink_to(big / "d0", target_is_directory=True)
    completed(*train(store, "cnn-shapes", **{
        "data.kind": "image_folder", "data.args": {"root": str(tmp_path / "pets"), "image_size": 16},
        "model.args.width_multiplier": 0.25}))


# -- text files -------------------------------------------------------------------------------
TEXT = "".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(400))


def test_text_file_language_model(store, tmp_path):
    (tmp_path / "code.txt").write_text(TEXT)
    trainer = completed(*train(store, "gpt-char", **{
        "data.kind": "text_file", "data.args": {"path": str(tmp_path / "code.txt"), "block_size": 32},
        "model.args.n_layer": 1, "model.args.n_embd": 32}))
    assert trainer.info.task == "language_modeling" and trainer.info.vocab_size < 40
    assert store.events(trainer.run_id, "sample")


def test_text_folder_with_a_pattern_and_a_bpe_tokenizer(store, tmp_path):
    for i in range(3):
        (tmp_path / "notes" / f"part{i}.md").parent.mkdir(exist_ok=True)
        (tmp_path / "notes" / f"part{i}.md").write_text(TEXT)
    trainer = completed(*train(store, "hf-gpt2-lm", **{
        "data.kind": "text_file", "model.args.n_layer": 1, "model.args.n_embd": 32,
        "data.args": {"path": str(tmp_path / "notes"), "pattern": "*.md", "tokenizer": "bpe", "vocab_size": 300,
                      "block_size": 32, "format": "hf"}}))
    assert trainer.info.extra["tokenizer"] == "bpe" and trainer.info.vocab_size <= 300


def test_a_text_folder_too_big_to_look_through_is_one_line_naming_the_field(store, tmp_path, monkeypatch):
    import workbench.data.source as source

    for i in range(40):
        (tmp_path / "home" / f"d{i}").mkdir(parents=True)
        (tmp_path / "home" / f"d{i}" / "notes.txt").write_text(TEXT)
    monkeypatch.setattr(source, "MAX_SCAN", 30)
    message = setup_error(*train(store, "gpt-char", **{"data.kind": "text_file",
                                                       "data.args": {"path": str(tmp_path / "home")}}))
    assert message.startswith("data.args (text_file): path") and "more than 30 files and folders" in message
    monkeypatch.setattr(source, "MAX_SCAN", 100)  # 80 entries: read, the nested files found by the pattern
    trainer = completed(*train(store, "gpt-char", **{
        "data.kind": "text_file", "data.args": {"path": str(tmp_path / "home"), "block_size": 32},
        "model.args.n_layer": 1, "model.args.n_embd": 32}))
    assert trainer.info.task == "language_modeling"


def test_text_file_missing_is_a_config_error(store, tmp_path):
    message = setup_error(*train(store, "gpt-char", **{"data.kind": "text_file",
                                                       "data.args": {"path": str(tmp_path / "nope.txt")}}))
    assert "not found" in message


# -- Hugging Face datasets ----------------------------------------------------------------------
def write_csv(path, rows: int = 120):
    lines = ["text,label"]
    for i in range(rows):
        label = ["alpha", "beta", "gamma"][i % 3]
        lines.append(f'"{label} words {i} {label} again",{label}')
    path.write_text("\n".join(lines) + "\n")


def test_hf_local_csv_classification(store, tmp_path):
    write_csv(tmp_path / "reviews.csv")
    trainer = completed(*train(store, "transformer-classifier", **{
        "data.kind": "hf", "data.args": {"path": str(tmp_path / "reviews.csv"), "seq_len": 12}}))
    assert trainer.info.extra["classes"] == ["alpha", "beta", "gamma"] and trainer.info.num_classes == 3


def test_hf_csv_builder_with_named_splits_for_bert(store, tmp_path):
    write_csv(tmp_path / "train.csv")
    write_csv(tmp_path / "val.csv", rows=30)
    trainer = completed(*train(store, "hf-bert-classifier", **{
        "data.kind": "hf", "model.args.num_layers": 1, "model.args.hidden_size": 32,
        "data.args": {"path": "csv", "data_files": {"train": str(tmp_path / "train.csv"),
                                                    "validation": str(tmp_path / "val.csv")},
                      "split": "train", "val_split": "validation", "tokenizer": "wordpiece", "vocab_size": 200,
                      "seq_len": 16, "format": "hf"}}))
    assert len(trainer.val_data) == 30 and trainer.info.extra["format"] == "hf"


def test_hf_local_jsonl_language_modeling(store, tmp_path):
    with (tmp_path / "corpus.jsonl").open("w") as handle:
        for line in TEXT.split("\n\n"):
            handle.write(json.dumps({"body": line}) + "\n")
    trainer = completed(*train(store, "gpt-char", **{
        "data.kind": "hf", "model.args.n_layer": 1, "model.args.n_embd": 32,
        "data.args": {"path": str(tmp_path / "corpus.jsonl"), "task": "language_modeling", "text_field": "body",
                      "tokenizer": "chars", "block_size": 32}}))
    assert trainer.info.task == "language_modeling"


def test_hf_missing_field_names_the_columns(store, tmp_path):
    write_csv(tmp_path / "reviews.csv")
    message = setup_error(*train(store, "transformer-classifier", **{
        "data.kind": "hf", "data.args": {"path": str(tmp_path / "reviews.csv"), "text_field": "review"}}))
    assert "'review' is not in the dataset" in message and "columns: text, label" in message


def test_hf_hub_dataset_offline_is_a_clear_error(store):
    message = setup_error(*train(store, "transformer-classifier", **{
        "data.kind": "hf", "data.args": {"path": "someone/some-dataset-that-is-not-here"}}))
    assert "load_dataset('someone/some-dataset-that-is-not-here'" in message and "offline" in message


@pytest.mark.slow
def test_bad_data_option_exits_2_from_the_cli(tmp_path):
    result = run_cli("train", "transformer-classifier", "--set", "data.kind=hf",
                     "--set", f"data.args={{path = '{tmp_path / 'missing.csv'}'}}", "--json",
                     "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "workbench: error: data: datasets.load_dataset(" in result.stderr
    assert "Traceback" not in result.stderr


# -- pretrained Hugging Face models (tiny ones saved here) --------------------------------------------
def save_tiny_bert(folder):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(["def return self import class for while if else"] * 10,
                                  trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3))
    model.save_pretrained(folder)
    return model


def save_tiny_gpt2(folder, n_positions: int = 96):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([TEXT], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(fast), n_positions=n_positions, n_embd=32, n_layer=1, n_head=2))
    model.save_pretrained(folder)
    return model


def test_bert_from_a_local_pretrained_directory(store, tmp_path):
    saved = save_tiny_bert(tmp_path / "tiny-bert")
    trainer, result = train(store, "hf-bert-classifier", **{
        "model.pretrained": str(tmp_path / "tiny-bert"), "data.args.tokenizer": str(tmp_path / "tiny-bert"),
        "data.args.max_per_class": 40, "data.args.seq_len": 16, "train.max_steps": 1})
    completed(trainer, result)
    loaded = trainer.model
    assert loaded.config.num_labels == 6  # a new head for the data's classes
    before = saved.bert.embeddings.word_embeddings.weight
    assert loaded.bert.embeddings.word_embeddings.weight.shape == before.shape
    assert trainer.info.vocab_size == len(before)


@pytest.mark.parametrize("name", ["hf-gpt2-lm", "hf-gpt2-lora",
                                  pytest.param("hf-prompt-tuning", marks=pytest.mark.slow)])
def test_causal_lms_from_a_local_pretrained_directory(store, tmp_path, name):
    saved = save_tiny_gpt2(tmp_path / "tiny-gpt2")
    trainer = completed(*train(store, name, **{
        "model.pretrained": str(tmp_path / "tiny-gpt2"), "data.args.tokenizer": str(tmp_path / "tiny-gpt2"),
        "data.args.block_size": 32, "data.args.max_chars": 20000, "train.max_steps": 1}))
    weights = dict(trainer.model.named_parameters())
    wte = next(p for n, p in weights.items() if n.endswith("wte.weight"))
    if name != "hf-gpt2-lm":  # adapters leave the pretrained weights as loaded, and frozen
        assert torch.equal(wte.detach().cpu(), saved.transformer.wte.weight.detach()) and not wte.requires_grad
        assert trainer.params_trainable < trainer.params_total / 5
    assert store.events(trainer.run_id, "sample")


@pytest.mark.parametrize("name", ["hf-gpt2-lora", pytest.param("hf-prompt-tuning", marks=pytest.mark.slow)])
def test_adapters_on_a_base_trained_by_hf_gpt2_lm(store, name):
    """Offline, the base for LoRA / prompt tuning is a workbench checkpoint of hf-gpt2-lm."""
    small = {"model.args.n_layer": 1, "model.args.n_embd": 32, "data.args.max_chars": 20000}
    base_trainer = completed(*train(store, "hf-gpt2-lm", **small, **{"data.args.block_size": 48}))
    checkpoint = next(c["path"] for c in store.checkpoints(base_trainer.run_id) if c["kind"] == "best")
    block = 48 - 16 if name == "hf-prompt-tuning" else 48  # virtual tokens take positions too
    source = {"data.args.source": "code"} if name == "hf-prompt-tuning" else {}  # the base's text, so its vocabulary
    trainer = completed(*train(store, name, **small, **source, **{"model.pretrained": checkpoint,
                                                                   "data.args.block_size": block}))
    base_wte = base_trainer.model.transformer.wte.weight.detach().cpu()
    wte = next(p for n, p in trainer.model.named_parameters() if n.endswith("wte.weight"))
    assert torch.equal(wte.detach().cpu(), base_wte) and not wte.requires_grad


def test_checkpoint_of_another_shape_is_a_clear_error(store):
    small = {"model.args.n_layer": 1, "model.args.n_embd": 32, "data.args.max_chars": 20000}
    base_trainer = completed(*train(store, "hf-gpt2-lm", **small))
    checkpoint = next(c["path"] for c in store.checkpoints(base_trainer.run_id) if c["kind"] == "best")
    message = setup_error(*train(store, "hf-gpt2-lora", **{**small, "model.args.n_embd": 64,
                                                           "model.pretrained": checkpoint}))
    assert "does not fit this model" in message


def test_pretrained_needs_its_own_tokenizer(store, tmp_path):
    save_tiny_gpt2(tmp_path / "tiny-gpt2")
    message = setup_error(*train(store, "hf-gpt2-lm", **{"model.pretrained": str(tmp_path / "tiny-gpt2"),
                                                         "data.args.max_chars": 20000}))
    assert f"data.args.tokenizer = '{tmp_path / 'tiny-gpt2'}'" in message


@pytest.mark.parametrize("name", ["hf-bert-classifier", "hf-gpt2-lm"])
def test_pretrained_hub_id_offline_is_a_clear_error(store, name):
    message = setup_error(*train(store, name, **{"model.pretrained": "someone/not-a-cached-model",
                                                 "data.args.max_chars": 20000} if name == "hf-gpt2-lm" else
                                 {"model.pretrained": "someone/not-a-cached-model", "data.args.max_per_class": 40}))
    assert "model.pretrained: 'someone/not-a-cached-model' is not a local directory and could not be fetched" in message


def test_pretrained_tokenizer_offline_is_a_clear_error(store):
    message = setup_error(*train(store, "hf-bert-classifier", **{"data.args.tokenizer": "someone/no-tokenizer",
                                                                 "data.args.max_per_class": 40}))
    assert "data.args.tokenizer: 'someone/no-tokenizer' is not a local directory" in message


def test_pretrained_directory_without_a_model(store, tmp_path):
    (tmp_path / "empty").mkdir()
    message = setup_error(*train(store, "hf-gpt2-lm", **{"model.pretrained": str(tmp_path / "empty"),
                                                         "data.args.max_chars": 20000}))
    assert "holds no loadable model" in message


@pytest.mark.parametrize("flag", [False, True])
def test_trust_remote_code_is_passed_through_and_off_by_default(store, monkeypatch, flag):
    import transformers

    seen = {}

    def spy(spec, **kwargs):
        seen.update(kwargs)
        raise OSError("not here")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    overrides = {"model.pretrained": "someone/remote-code-model", "data.args.max_chars": 20000}
    if flag:
        overrides["model.trust_remote_code"] = True
    setup_error(*train(store, "hf-gpt2-lm", **overrides))
    assert seen["trust_remote_code"] is flag


@pytest.mark.parametrize("name", ["hf-gpt2-lm", "hf-gpt2-lora", "hf-bert-classifier"])
def test_gradient_checkpointing_switch(store, name):
    small = ({"model.args.num_layers": 1, "model.args.hidden_size": 32, "data.args.max_per_class": 40}
             if name == "hf-bert-classifier" else
             {"model.args.n_layer": 1, "model.args.n_embd": 32, "data.args.block_size": 32, "data.args.max_chars": 20000})
    trainer = completed(*train(store, name, **{"model.args.gradient_checkpointing": True, **small}))
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    trained = [p for p in trainer.model.parameters() if p.requires_grad]
    assert trained and trainer.last_train_loss is not None
    if name == "hf-gpt2-lora":  # the adapter still gets gradients through checkpointed blocks
        lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
        assert lora_b and all(bool(p.detach().abs().sum() > 0) for p in lora_b)  # moved off their zero init


def test_lora_bad_target_modules_lists_the_real_names(store):
    message = setup_error(*train(store, "hf-gpt2-lora", **{"model.args.target_modules": ["q_proj"],
                                                           "data.args.max_chars": 20000}))
    assert "model.args.target_modules" in message and "c_attn" in message


# -- torchvision weights for the resnet ---------------------------------------------------------
def test_resnet_imagenet_weights_offline_is_a_clear_error(store, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    no_network(monkeypatch)
    message = setup_error(*train(store, "resnet18-transfer", **{"model.pretrained": "imagenet",
                                                                "data.args.train_size": 16}))
    assert "could not fetch torchvision's ImageNet resnet18 weights" in message


def test_resnet_from_a_saved_state_dict(store, tmp_path):
    from torchvision.models import resnet18

    source = resnet18()
    torch.save(source.state_dict(), tmp_path / "backbone.pt")
    trainer = completed(*train(store, "resnet18-transfer", **{
        "model.pretrained": str(tmp_path / "backbone.pt"), "model.args.strategy": "head", "optim.group_lr": {},
        "data.args.image_size": 32, "data.args.train_size": 16, "data.args.val_size": 8, "train.max_steps": 1}))
    assert torch.equal(trainer.model.conv1.weight.detach().cpu(), source.conv1.weight)
    trainable = {n.split(".")[0] for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == {"fc"}


def test_resnet_pretrained_must_be_imagenet_or_a_file(store):
    message = setup_error(*train(store, "resnet18-transfer", **{"model.pretrained": "resnet-please",
                                                                "data.args.train_size": 16}))
    assert "model.pretrained" in message and "'resnet-please'" in message


# -- a user's own model and data ------------------------------------------------------------------
def test_custom_model_and_data_targets(store, tmp_path):
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def model(width=8):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))\n"
        "def data(n=64):\n"
        "    x = torch.randn(n, 3)\n"
        "    return TensorDataset(x, (x[:, 0] > 0).long()), TensorDataset(x[:16], (x[:16, 0] > 0).long())\n")
    preset = tmp_path / "mine.toml"
    preset.write_text('name = "mine"\n[model]\nkind = "custom"\ntarget = "mine.py:model"\n[model.args]\nwidth = 4\n'
                      '[data]\nkind = "custom"\ntarget = "mine.py:data"\n[train]\nmax_steps = 3\nbatch_size = 8\n')
    from workbench.presets import load_preset
    from workbench.training.trainer import Trainer

    trainer = Trainer(load_preset(str(preset)), store)
    assert trainer.run().status == "completed"
    assert trainer.params_total == 3 * 4 + 4 + 4 * 2 + 2
