"""The corrupt inputs of the loader fuzz test: which file, what is done to it, which command reads it.

Every case copies a valid tiny run (``ckpt/``) and the valid data files (``data/``) into
its own folder, applies one mutation to one file and runs one CLI command on it.
``valid=True`` cases are inputs that must still work (exit 0): a validation layer
that refuses good files is as wrong as one that lets bad ones through.
``docs/reliability.md`` lists these figures; ``test_reliability_doc`` keeps them equal.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# ------------------------------------------------------------------- the mutations
Mutation = Callable[[Path], None]


def _write(data: bytes | str) -> Mutation:
    def mutate(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mutate


def _bytes(edit: Callable[[bytes], bytes]) -> Mutation:
    return lambda path: path.write_bytes(edit(path.read_bytes()))


def _garbage(path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    path.write_bytes(bytes(torch.randint(0, 256, (max(path.stat().st_size, 64),), generator=g, dtype=torch.uint8).tolist()))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _make_dir(path: Path) -> None:
    _remove(path)
    path.mkdir()


def _st_header(edit: Callable[[dict], object]) -> Mutation:
    """Rewrite a safetensors header (the JSON after the 8-byte length)."""
    def mutate(path: Path) -> None:
        data = path.read_bytes()
        n = struct.unpack("<Q", data[:8])[0]
        header = edit(json.loads(data[8:8 + n]))
        raw = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    return mutate


def _st_offsets_past_end(header: dict) -> dict:
    name = next(k for k in header if k != "__metadata__")
    begin, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin, end + 10**9]
    return header


def _tensors(edit: Callable[[dict[str, torch.Tensor]], None], keep_metadata: bool = True) -> Mutation:
    """Load a safetensors file, edit its tensors, save it back (metadata kept)."""
    def mutate(path: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
        tensors = load_file(str(path))
        edit(tensors)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata if keep_metadata else None)
    return mutate


def _largest_float(tensors: dict[str, torch.Tensor]) -> str:
    return max((k for k, v in tensors.items() if v.is_floating_point()), key=lambda k: tensors[k].numel())


def _set_value(value: float) -> Mutation:
    def edit(t):
        k = _largest_float(t)
        t[k] = t[k].clone()
        t[k].view(-1)[t[k].numel() // 2] = value
    return _tensors(edit)


def _cast(dtype: torch.dtype) -> Mutation:
    def edit(t):
        k = _largest_float(t)
        t[k] = t[k].to(dtype)
    return _tensors(edit)


def _cast_all(dtype: torch.dtype) -> Mutation:
    def edit(t):
        for k, v in list(t.items()):
            if v.is_floating_point():
                t[k] = v.to(dtype)
    return _tensors(edit)


def _grow(t):
    k = _largest_float(t)
    t[k] = torch.cat([t[k], t[k][:1]])


def _drop(t):
    """Remove the smallest float tensor of two or more values (a bias or a norm: never a tied weight)."""
    t.pop(min((k for k, v in t.items() if v.is_floating_point() and v.numel() > 1), key=lambda k: t[k].numel()))


def _extra(t):
    t["bogus.weight"] = torch.zeros(3)


def _scalar(t):
    k = _largest_float(t)
    t[k] = t[k].reshape(-1)[0].clone()


def _json(edit: Callable[[dict], object]) -> Mutation:
    def mutate(path: Path) -> None:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return mutate


def _set(key: str, value) -> Mutation:
    def edit(obj):
        target = obj
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
        return obj
    return _json(edit)


def _delete(*keys: str) -> Mutation:
    def edit(obj):
        for key in keys:
            target = obj
            *parents, last = key.split(".")
            for p in parents:
                target = target[p]
            target.pop(last, None)
        return obj
    return _json(edit)


SAFETENSORS: dict[str, Mutation] = {
    "empty file": _write(b""),
    "four bytes": _write(b"\x01\x02\x03\x04"),
    "truncated at half": _bytes(lambda d: d[: len(d) // 2]),
    "truncated in the header": _bytes(lambda d: d[:20]),
    "last byte cut": _bytes(lambda d: d[:-1]),
    "random bytes": _garbage,
    "header length 2**64-1": _bytes(lambda d: b"\xff" * 8 + d[8:]),
    "header not JSON": _bytes(lambda d: d[:8] + b"{" * struct.unpack("<Q", d[:8])[0] + d[8 + struct.unpack("<Q", d[:8])[0]:]),
    "header a JSON list": _st_header(lambda h: [1] * 1),
    "offsets past the end": _st_header(_st_offsets_past_end),
    "unknown dtype": _st_header(lambda h: {k: ({**v, "dtype": "Q7"} if k != "__metadata__" else v) for k, v in h.items()}),
    "plain text": _write("hello, I am not a weights file\n"),
    "a folder": _make_dir,
    "missing": _remove,
    "a weight as int32": _cast(torch.int32),
    "a weight as bool": _cast(torch.bool),
    "a weight as uint8": _cast(torch.uint8),
    "a weight one row longer": _tensors(_grow),
    "a weight missing": _tensors(_drop),
    "an unexpected weight": _tensors(_extra),
    "a matrix as a scalar": _tensors(_scalar),
    "one NaN": _set_value(math.nan),
    "one +Inf": _set_value(math.inf),
    "one -Inf": _set_value(-math.inf),
}
VALID_SAFETENSORS: dict[str, Mutation] = {
    "every weight in float16": _cast_all(torch.float16),  # HF folders often are: loaded as float32
    "every weight in bfloat16": _cast_all(torch.bfloat16),
    "no metadata": _tensors(lambda t: None, keep_metadata=False),
}

JSON_FILE: dict[str, Mutation] = {
    "empty file": _write(""),
    "not JSON": _write("{\"model_type\": "),
    "a JSON list": _write("[]"),
    "null": _write("null"),
    "a string": _write("\"config\""),
    "a number": _write("42"),
    "non-UTF-8 bytes": _write(b"\xff\xfe{\x00}\x00"),
    "a folder": _make_dir,
    "missing": _remove,
}

# config.json: per model, its fields by role (the names in the file)
CONFIG_FIELDS = {
    "transformer": dict(vocab="src_vocab_size", layers="num_encoder_layers", width="d_model", heads="num_heads",
                        dropout="dropout", eps="norm_eps", token="eos_id", choice="activation", length="max_len"),
    "seq2seq": dict(vocab="tgt_vocab_size", layers="num_layers", width="hidden_dim", heads=None,
                    dropout="dropout", eps=None, token="bos_id", choice="cell", length="max_len"),
    "gpt2": dict(vocab="vocab_size", layers="n_layer", width="n_embd", heads="n_head",
                 dropout="resid_pdrop", eps="layer_norm_epsilon", token="eos_token_id", choice="activation_function",
                 length="n_positions"),
    "bert": dict(vocab="vocab_size", layers="num_hidden_layers", width="hidden_size", heads="num_attention_heads",
                 dropout="hidden_dropout_prob", eps="layer_norm_eps", token="pad_token_id", choice="hidden_act",
                 length="max_position_embeddings"),
    "vit": dict(vocab=None, layers="num_hidden_layers", width="hidden_size", heads="num_attention_heads",
                dropout="hidden_dropout_prob", eps="layer_norm_eps", token=None, choice="hidden_act", length="image_size"),
    "gat": dict(vocab="in_dim", layers="num_layers", width="hidden_dim", heads="heads",
                dropout="dropout", eps=None, token=None, choice=None, length="num_classes"),
}


def config_mutations(model_type: str) -> dict[str, Mutation]:
    f = CONFIG_FIELDS[model_type]
    out: dict[str, Mutation] = {
        "model_type unknown": _set("model_type", "llama"),
        "model_type a number": _set("model_type", 7),
        "every field removed": _json(lambda c: {"model_type": c["model_type"]}),
    }
    for role in ("heads", "length"):
        name = f[role]
        if name is not None:
            out |= {f"{name} a string": _set(name, "big"), f"{name} -1": _set(name, -1), f"{name} 10**12": _set(name, 10**12)}
    if f["heads"]:
        out[f"{f['heads']} 3 (the width not divisible)"] = _set(f["heads"], 3)
    for role in ("vocab", "layers", "width"):
        name = f[role]
        if name is None:
            continue
        out |= {
            f"{name} a string": _set(name, "big"),
            f"{name} null": _set(name, None),
            f"{name} a list": _set(name, [1, 2]),
            f"{name} 1.5": _set(name, 1.5),
            f"{name} true": _set(name, True),
            f"{name} -1": _set(name, -1),
            f"{name} 0": _set(name, 0),
            f"{name} 1e12": _set(name, 1e12),
            f"{name} 10**12": _set(name, 10**12),
        }
        if role in ("vocab", "width"):  # (a missing layer count may default to the trained one: valid)
            out[f"{name} missing"] = _delete(name)
    out[f"{f['layers']} 10**9"] = _set(f["layers"], 10**9)
    if f["vocab"]:
        out[f"{f['vocab']} 10**9"] = _set(f["vocab"], 10**9)
    out[f"{f['width']} 2**20"] = _set(f["width"], 2**20)
    if f["dropout"]:
        out |= {f"{f['dropout']} 5": _set(f["dropout"], 5.0), f"{f['dropout']} a string": _set(f["dropout"], "x"),
                f"{f['dropout']} NaN": _write_nan_field(f["dropout"])}
    if f["eps"]:
        out |= {f"{f['eps']} -1": _set(f["eps"], -1.0), f"{f['eps']} a string": _set(f["eps"], "small")}
    if f["token"]:
        out |= {f"{f['token']} past the vocabulary": _set(f["token"], 10**6), f"{f['token']} -5": _set(f["token"], -5)}
    if f["choice"]:
        out |= {f"{f['choice']} unknown": _set(f["choice"], "wiggle"), f"{f['choice']} a number": _set(f["choice"], 3)}
    return out


# HF's GPT-2 config accepts an eos_token_id outside the vocabulary (GPT2Config's default
# 50256 with a small vocabulary; transformers only warns): attnlab reads it as "no EOS"
VALID_CONFIG = {("gpt2", "eos_token_id past the vocabulary"), ("gpt2", "eos_token_id -5")}


def _write_nan_field(key: str) -> Mutation:
    def mutate(path: Path) -> None:
        obj = json.loads(path.read_text())
        obj[key] = "__NAN__"
        path.write_text(json.dumps(obj).replace('"__NAN__"', "NaN"))  # Python's json reads NaN
    return mutate


TOKENIZER_CONFIG: dict[str, Mutation] = {
    "kind missing": _delete("kind"),
    "kind unknown": _set("kind", "sentencepiece"),
    "kind a list": _set("kind", ["word"]),
    "special_tokens missing": _delete("special_tokens"),
    "special_tokens a list": _set("special_tokens", ["<pad>"]),
    "special_tokens.unk not in the vocabulary": _set("special_tokens.unk", "<never-seen>"),
    "special_tokens.pad a number": _set("special_tokens.pad", 5),
    "special_tokens with an unknown role": _set("special_tokens.boss", "<s>"),
}
TOKENIZER_JSON: dict[str, Mutation] = {
    "an empty object": _write("{}"),
    "model missing": _delete("model"),
    "model.vocab a list": _set("model.vocab", [1, 2]),
    "model.type unknown": _set("model.type", "Quantum"),
    "random bytes": _garbage,
}
VOCAB_TXT: dict[str, Mutation] = {
    "empty": _write(""),
    "non-UTF-8": _write(b"[PAD]\n\xff\xfe\n"),
    "[MASK] removed": lambda p: p.write_text("".join(line for line in p.read_text().splitlines(True) if line.strip() != "[MASK]")),
    "random bytes": _garbage,
}

def _hf_folder(mutation: Mutation) -> Mutation:
    """Make the BERT folder a HF one (vocab.txt, no attnlab tokenizer files), then mutate vocab.txt."""
    def mutate(path: Path) -> None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (path.parent / name).unlink()
        mutation(path)
    return mutate


TRAINER_STATE: dict[str, Mutation] = {
    "step missing": _delete("step"),
    "step a string": _set("step", "two"),
    "step -3": _set("step", -3),
    "step 1.5": _set("step", 1.5),
    "step past config.steps": _set("step", 10**6),
    "config missing": _delete("config"),
    "config a list": _set("config", [1]),
    "config.steps a string": _set("config.steps", "many"),
    "config.steps 0": _set("config.steps", 0),
    "config.lr a string": _set("config.lr", "fast"),
    "config with an unknown field": _set("config.turbo", True),
    "rng missing": _delete("rng"),
    "rng a number": _set("rng", 3),
    "rng.python missing": _delete("rng.python"),
    "rng.numpy a string": _set("rng.numpy", "MT19937"),
    "losses a string": _set("losses", "low"),
    "losses with a string": _set("losses", [1.0, "x"]),
    "world_size 0": _set("world_size", 0),
}
RNG_STATE: dict[str, Mutation] = {
    "cpu state missing": _tensors(lambda t: t.pop("cpu")),
    "cpu state cut short": _tensors(lambda t: t.update(cpu=t["cpu"][:100].clone())),
    "cpu state as float32": _tensors(lambda t: t.update(cpu=t["cpu"].float())),
    "cpu state all zeros": _tensors(lambda t: t.update(cpu=torch.zeros_like(t["cpu"]))),
}
OPTIMIZER: dict[str, Mutation] = {
    "state metadata missing": _tensors(lambda t: None, keep_metadata=False),
    "state metadata not JSON": lambda p: _tensors(lambda t: None)(p) or _set_metadata(p, "{not json"),
    "state metadata a list": lambda p: _set_metadata(p, "[]"),
    "a moment one row longer": _tensors(_grow),
    "a moment removed": _tensors(_drop),
    "a moment with NaN": _set_value(math.nan),
    "a moment as int32": _cast(torch.int32),
}


def _set_metadata(path: Path, state: str) -> None:
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={"state": state})


TEXT_DATA: dict[str, Mutation] = {
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
    "NUL bytes in text": _bytes(lambda d: d.replace(b" ", b"\x00")),
    "Latin-1 bytes throughout": _bytes(lambda d: d.replace(b"a", b"\xe9").replace(b"e", b"\xe8")),
    "random bytes": _garbage,
    "empty file": _write(b""),
    "whitespace only": _write(" \n\n \t\n"),
    "a folder with no text files": _make_dir,
    "missing": _remove,
}


def _replace_text(old: str, new: str) -> Mutation:
    return lambda p: p.write_text(p.read_text().replace(old, new))


def _replace_first(old: str, new: str) -> Mutation:
    return lambda p: p.write_text(p.read_text().replace(old, new, 1))


TSV_DATA: dict[str, Mutation] = {
    "non-UTF-8 bytes": _bytes(lambda d: d.replace(b"a", b"\xe9", 3)),
    "UTF-16": lambda p: p.write_bytes(p.read_text().encode("utf-16")),
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
    "no tab anywhere": _replace_text("\t", " "),
    "three columns": _replace_text("\t", "\tx\t"),
    "empty file": _write(b""),
    "NUL bytes": _bytes(lambda d: d.replace(b" ", b"\x00", 5)),
    "a folder": _make_dir,
    "missing": _remove,
}

PARALLEL_FILES: dict[str, Mutation] = {
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
    "non-UTF-8 bytes": _bytes(lambda d: d.replace(b"a", b"\xe9", 2)),
    "one line fewer": lambda p: p.write_text("".join(p.read_text().splitlines(True)[:-1])),
    "empty file": _write(b""),
    "a folder": _make_dir,
    "missing": _remove,
}
ALIGNMENTS: dict[str, Mutation] = {
    "intact": lambda p: None,
    "not Pharaoh pairs": _replace_first("0-4", "x-y"),
    "a link past the sentence": _replace_first("0-4", "0-99"),
    "one line fewer": lambda p: p.write_text("".join(p.read_text().splitlines(True)[:-1])),
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
    "non-UTF-8 bytes": _bytes(lambda d: b"\xff" + d),
    "empty file": _write(b""),
}

EDGES_CSV: dict[str, Mutation] = {
    "non-UTF-8 bytes": _bytes(lambda d: d + b"\xff\xfe,\xe9\n"),
    "header only": lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"),
    "empty file": _write(b""),
    "column target renamed": _replace_text("target", "dst"),
    "an unknown node": lambda p: p.write_text(p.read_text() + "0,nobody\n"),
    "a row with one field": lambda p: p.write_text(p.read_text() + "0\n"),
    "NUL bytes": _bytes(lambda d: d.replace(b",", b"\x00", 3)),
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
    "missing": _remove,
}
NODES_CSV: dict[str, Mutation] = {
    "non-UTF-8 bytes": _bytes(lambda d: d.replace(b"a", b"\xe9", 1) + b"\xff\n"),
    "header only": lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"),
    "empty file": _write(b""),
    "column id missing": _replace_text("id,", "name,"),
    "duplicate ids": lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[1] + "\n"),
    "a feature not a number": _replace_first(",0.5", ",zero"),
    "a feature NaN": _replace_first(",0.5", ",nan"),
    "a feature inf": _replace_first(",0.5", ",inf"),
    "one label only": lambda p: p.write_text(p.read_text().replace(",b,", ",a,")),
    "a split unknown": lambda p: p.write_text(p.read_text().replace(",train,", ",holdout,", 1)),
    "a row short of features": lambda p: p.write_text(p.read_text() + "99,a,train\n"),
    "an executable (/bin/ls)": lambda p: shutil.copyfile("/bin/ls", p),
}

IMAGES: dict[str, Mutation] = {
    "text named .png": _write("not an image\n"),
    "empty .png": _write(b""),
    "truncated PNG": _bytes(lambda d: d[: len(d) // 2]),
    "PNG header only": _bytes(lambda d: d[:16]),
    "random bytes": _garbage,
    "over twice Pillow's decompression-bomb limit": lambda p: _bomb(p, 20000),
    "over Pillow's decompression-bomb limit (its warning)": lambda p: _bomb(p, 15000),
    "a folder": _make_dir,
    "missing": _remove,
}


def _bomb(path: Path, side: int = 20000) -> None:
    """A small PNG whose header claims ``side`` x ``side`` grey pixels (20000: 400 M, over twice
    Pillow's ~179 M limit: its error; 15000: 225 M, over the limit: its warning)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    body = zlib.compress(b"\x00" * (side + 1) * 64)  # the first rows only: the header is what counts
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# ------------------------------------------------------------------- the commands
@dataclass(frozen=True)
class Case:
    kind: str  # the row of docs/reliability.md
    name: str  # what was done
    run: str | None  # the base run copied to ckpt/ (None: none)
    target: str  # the file mutated, relative to the case folder
    command: str  # a key of COMMANDS
    mutation: Mutation
    valid: bool = False

    @property
    def id(self) -> str:
        return f"{self.kind}|{self.run or '-'}|{self.command}|{self.target}|{self.name}"


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "translate": lambda d: ["translate", "--ckpt", str(d / "ckpt"), "the cat sees a dog"],
    "generate": lambda d: ["generate", "--ckpt", str(d / "ckpt"), "--prompt", "the", "--max-new-tokens", "3"],
    "fill-mask": lambda d: ["fill-mask", "--ckpt", str(d / "ckpt"), "the [MASK] sat"],
    "classify": lambda d: ["classify", "--ckpt", str(d / "ckpt"), str(d / "data" / "image.png")],
    "viz": lambda d: ["viz", "--ckpt", str(d / "ckpt"), "--out", str(d / "viz")],
    "viz gat csv": lambda d: ["viz", "--ckpt", str(d / "ckpt"), "--out", str(d / "viz"),
                              str(d / "data" / "edges.csv"), str(d / "data" / "nodes.csv")],
    "resume lm": lambda d: ["train", "lm", "--data", str(d / "data" / "text.txt"), "--preset", "tiny", "--context", "16",
                            "--batch-size", "2", "--final-eval", "none", "--out", str(d / "ckpt"), "--resume",
                            "--steps", "3", "--quiet"],
    "resume translate": lambda d: ["train", "translate", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8",
                                   "--out", str(d / "ckpt"), "--resume", "--steps", "3", "--quiet"],
    "train lm": lambda d: ["train", "lm", "--data", str(d / "data" / "text.txt"), "--preset", "tiny", "--context", "16",
                           "--batch-size", "2", "--final-eval", "none", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train mlm": lambda d: ["train", "mlm", "--data", str(d / "data" / "text.txt"), "--preset", "tiny", "--vocab-size", "200",
                            "--batch-size", "4", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train classify": lambda d: ["train", "classify", "--ckpt", str(d / "ckpt"), "--data", str(d / "data" / "cls.tsv"),
                                 "--batch-size", "4", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train translate": lambda d: ["train", "translate", "--data", str(d / "data" / "par.tsv"), "--preset", "tiny",
                                  "--batch-size", "8", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train translate files": lambda d: ["train", "translate", "--data", str(d / "data" / "src.txt"), "--tgt-data",
                                        str(d / "data" / "tgt.txt"), "--preset", "tiny", "--batch-size", "8",
                                        "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train translate align": lambda d: ["train", "translate", "--data", str(d / "data" / "par.tsv"), "--align",
                                        str(d / "data" / "par.align"), "--guided-alignment", "1", "--preset", "tiny",
                                        "--batch-size", "8", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train gat": lambda d: ["train", "gat", "--edges", str(d / "data" / "edges.csv"), "--nodes", str(d / "data" / "nodes.csv"),
                            "--seeds", "1", "--out", str(d / "out"), "--steps", "2", "--quiet"],
    "train vit": lambda d: ["train", "vit", "--data", str(d / "data" / "images"), "--image-size", "8", "--channels", "1",
                            "--batch-size", "4", "--test-fraction", "0.5", "--out", str(d / "out"), "--steps", "2", "--quiet"],
}

# the checkpoint each inference command reads, and its model type
INFERENCE = {"tr": ("translate", "transformer"), "s2s": ("translate", "seq2seq"), "lm": ("generate", "gpt2"),
             "mlm": ("fill-mask", "bert"), "vit": ("classify", "vit"), "gat": ("viz gat csv", "gat")}


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for run, (command, model_type) in INFERENCE.items():
        for name, m in SAFETENSORS.items():
            cases.append(Case("weights (model.safetensors)", name, run, "ckpt/model.safetensors", command, m))
        for name, m in VALID_SAFETENSORS.items():
            cases.append(Case("weights (model.safetensors)", name, run, "ckpt/model.safetensors", command, m, valid=True))
        for name, m in JSON_FILE.items():
            cases.append(Case("config.json", name, run, "ckpt/config.json", command, m))
        for name, m in config_mutations(model_type).items():
            valid = (model_type, name) in VALID_CONFIG
            cases.append(Case("config.json", name, run, "ckpt/config.json", command, m, valid))
    for run, command, folder in (("tr", "translate", "ckpt/src_tokenizer/"), ("lm", "generate", "ckpt/"),
                                 ("mlm", "fill-mask", "ckpt/")):
        for name, m in {**JSON_FILE, **TOKENIZER_CONFIG}.items():
            # a HF folder has no tokenizer_config.json of attnlab's: tokenizer.json / vocab.txt are read then
            valid = run != "tr" and name in ("missing", "kind missing")
            cases.append(Case("tokenizer_config.json", name, run, folder + "tokenizer_config.json", command, m, valid))
        for name, m in {**JSON_FILE, **TOKENIZER_JSON}.items():
            cases.append(Case("tokenizer.json", name, run, folder + "tokenizer.json", command, m))
    for name, m in {"intact (a HF folder: vocab.txt only)": lambda p: None, **VOCAB_TXT}.items():
        cases.append(Case("vocab.txt (HF BERT folders)", name, "mlm", "ckpt/vocab.txt", "fill-mask", _hf_folder(m),
                          valid=name.startswith("intact")))
    for run, command in (("lm", "resume lm"), ("tr", "resume translate")):
        for name, m in {**JSON_FILE, **TRAINER_STATE}.items():
            cases.append(Case("trainer_state.json (--resume)", name, run, "ckpt/trainer_state.json", command, m))
        for name, m in {**SAFETENSORS_SHORT, **RNG_STATE}.items():
            cases.append(Case("rng_state.safetensors (--resume)", name, run, "ckpt/rng_state.safetensors", command, m))
        for name, m in {**SAFETENSORS_SHORT, **OPTIMIZER}.items():
            cases.append(Case("optimizer.safetensors (--resume)", name, run, "ckpt/optimizer.safetensors", command, m))
    for command in ("train lm", "train mlm"):
        for name, m in TEXT_DATA.items():
            cases.append(Case("text data (--data)", name, None, "data/text.txt", command, m))
    for name, m in TSV_DATA.items():
        cases.append(Case("TSV text<TAB>label (train classify --data)", name, "mlm", "data/cls.tsv", "train classify", m))
        cases.append(Case("TSV source<TAB>target (train translate --data)", name, None, "data/par.tsv", "train translate", m))
    kind = "parallel text (train translate --data/--tgt-data, --align)"
    for name, m in PARALLEL_FILES.items():
        cases.append(Case(kind, f"--tgt-data: {name}", None, "data/tgt.txt", "train translate files", m))
        cases.append(Case(kind, f"--data: {name}", None, "data/src.txt", "train translate files", m))
    for name, m in ALIGNMENTS.items():
        cases.append(Case(kind, f"--align: {name}", None, "data/par.align", "train translate align", m,
                          valid=name == "intact"))
    for name, m in EDGES_CSV.items():
        cases.append(Case("CSV graph (train gat --edges/--nodes, viz)", f"edges: {name}", None, "data/edges.csv", "train gat", m))
    for name, m in NODES_CSV.items():
        cases.append(Case("CSV graph (train gat --edges/--nodes, viz)", f"nodes: {name}", None, "data/nodes.csv", "train gat", m))
    for name in ("non-UTF-8 bytes", "column target renamed"):
        cases.append(Case("CSV graph (train gat --edges/--nodes, viz)", f"edges: {name}", "gat", "data/edges.csv",
                          "viz gat csv", EDGES_CSV[name]))
    for name, m in IMAGES.items():
        cases.append(Case("images (classify, train vit --data)", name, "vit", "data/image.png", "classify", m))
        # a missing file leaves the class's other images: still a valid folder
        cases.append(Case("images (classify, train vit --data)", name, None, "data/images/b/1.png", "train vit", m,
                          valid=name == "missing"))
    return cases


SAFETENSORS_SHORT = {k: SAFETENSORS[k] for k in ("empty file", "truncated at half", "random bytes", "header not JSON",
                                                  "plain text", "missing")}
