"""LoRA files: found in ``<models_root>/loras/``, hashed, and checked against the model they will change.

A LoRA is a ``.safetensors`` file of low-rank pairs (``lora_A``/``lora_B`` in the diffusers/PEFT format,
``lora_down``/``lora_up`` in kohya's). Whether it fits a model is decided before any GPU work from two
cheap reads: the file's safetensors *header* (names and shapes; no tensor is read) and the local model's
*config* (each component built on the meta device: layer shapes, no weights). Every pair must land on a
layer of the same kind and width in the component its name points at, else one sentence says why.
Uploads are checked the same way and stored under a cleaned name; the uploaded name is never a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from backend.errors import LoraError, UnsafePath
from backend.hashing import file_sha256
from backend.media.safe_files import resolve_inside
from backend.models.registry import ModelRef, keyframe_model_for, motion_model_for
from backend.record import LoraRecord
from backend.spec import JobSpec, LoraChoice

LORA_FOLDER = "loras"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format refuses larger headers
MAX_UPLOAD_BYTES = 2 * 1024**3
MAX_NAME = 80
# Tensor-name endings of a low-rank pair's halves (diffusers/PEFT, kohya, older diffusers formats).
_PAIR_ENDINGS = ((".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_A.weight", "down"),
                 (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"),
                 ("_lora.down.weight", "down"), ("_lora.up.weight", "up"))
_LYCORIS = re.compile(r"\.(hada_w[12]_[ab]|lokr_w[12](_[ab])?|lokr_t2|hada_t[12])$")
# Name prefix -> the pipeline component its layers belong to (diffusers/PEFT, kohya, original formats).
_PREFIXES = (("text_encoder_2.", "text_encoder_2"), ("lora_te2_", "text_encoder_2"),
             ("text_encoder.", "text_encoder"), ("lora_te1_", "text_encoder"), ("lora_te_", "text_encoder"),
             ("unet.", "unet"), ("lora_unet_", "unet"), ("transformer.", "transformer"),
             ("lora_transformer_", "transformer"), ("diffusion_model.", "transformer"))
_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


@dataclass(frozen=True)
class LoraFile:
    """A LoRA file in the LoRA folder, as the Models page lists it."""

    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class LoraLayer:
    """One low-rank pair: the component it changes and the width of the layer it fits."""

    name: str  # the pair's tensor name without its ending
    component: str | None  # "unet", "transformer", "text_encoder", ... (None: no prefix; the denoiser)
    kind: str  # "linear" | "conv"
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ComponentLayers:
    """What one component (a UNet, a transformer, a text encoder) offers to LoRA layers."""

    shapes: frozenset[tuple[str, int, int]]  # (kind, in, out) of every Linear and Conv layer
    names: frozenset[str]  # its module paths (``down_blocks.1.attentions.0...to_q``)
    width: int  # a text encoder's hidden size (else the most common input width)
    cross_attention: int | None = None  # a denoiser's text-feature width (SDXL: 2048)


@dataclass(frozen=True)
class ModelLayers:
    """The layers a model offers to LoRAs, per component (from its config, on the meta device)."""

    label: str
    components: dict[str, ComponentLayers]

    @property
    def denoiser(self) -> str:
        return next((c for c in self.components if c not in _TEXT_ENCODERS), "unet")


# --- the folder ---------------------------------------------------------------------------------------

def lora_folder(models_root: Path) -> Path:
    return Path(models_root) / LORA_FOLDER


def list_loras(models_root: Path) -> list[LoraFile]:
    """The ``.safetensors`` files in the LoRA folder, by name (unreadable ones left out)."""
    found = []
    for path in sorted(lora_folder(models_root).glob("[!.]*.safetensors")):
        try:
            found.append(LoraFile(path.name, path, path.stat().st_size, file_sha256(path)))
        except OSError:  # gone or unreadable meanwhile (a folder named *.safetensors too)
            continue
    return found


def lora_path(models_root: Path, name: str) -> Path:
    """The file ``name`` inside the LoRA folder; LoraError when it is not there (or would lead outside)."""
    folder = lora_folder(models_root)
    try:
        if not folder.is_dir() or "/" in name or name.startswith("."):
            raise UnsafePath(name)
        path = resolve_inside(name, folder)
    except UnsafePath:
        raise LoraError(f"The LoRA file '{name}' is not in {folder}: add it on the Models page or copy it "
                        "there.") from None
    if not path.is_file():
        raise LoraError(f"The LoRA file '{name}' in {folder} is not a file.")
    return path


# --- what a file holds --------------------------------------------------------------------------------

def read_header(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from the safetensors header alone; LoraError if it is not a safetensors file."""
    name = Path(path).name
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            if not 0 < length <= MAX_HEADER_BYTES:
                raise ValueError("no header")
            header = json.loads(handle.read(length))
        shapes = {key: [int(n) for n in entry["shape"]] for key, entry in header.items() if key != "__metadata__"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise LoraError(f"'{name}' is not a safetensors file (no readable header).") from None
    return shapes


def lora_layers(path: Path) -> list[LoraLayer]:
    """The file's low-rank pairs; LoraError when it has none (it is not a LoRA) or only LyCORIS layers."""
    return layers_from_shapes(Path(path).name, read_header(path))


def layers_from_shapes(name: str, shapes: dict[str, list[int]]) -> list[LoraLayer]:
    halves: dict[str, dict[str, list[int]]] = {}
    for key, shape in shapes.items():
        for ending, half in _PAIR_ENDINGS:
            if key.endswith(ending):
                halves.setdefault(key[: -len(ending)], {})[half] = shape
                break
    layers = []
    for base, pair in sorted(halves.items()):
        down, up = pair.get("down"), pair.get("up")
        if down is None or up is None or len(down) < 2 or len(up) < 2 or len(down) != len(up):
            continue
        kind = "linear" if len(down) == 2 else "conv"  # conv: [rank, in, kh, kw] and [out, rank, 1, 1]
        component = next((part for prefix, part in _PREFIXES if base.startswith(prefix)), None)
        layers.append(LoraLayer(base, component, kind, down[1], up[0]))
    if layers:
        return layers
    if any(_LYCORIS.search(key) for key in shapes):
        raise LoraError(f"'{name}' is a LyCORIS (LoHa/LoKr) file, which diffusers cannot load as a LoRA.")
    raise LoraError(f"'{name}' is not a LoRA: none of its {len(shapes)} tensors is a LoRA layer "
                    "(lora_A/lora_B or lora_down/lora_up pairs).")


# --- does it fit the model? ---------------------------------------------------------------------------

def check_fits(name: str, layers: list[LoraLayer], model: ModelLayers) -> None:
    """LoraError (one sentence) unless every pair lands on a layer of the same kind and width.

    Names in the diffusers/PEFT format (``unet.<module path>``) must also mostly be module paths of the
    model: two architectures can share widths (LTX and Wan blocks), not module names.
    """
    for layer in layers:
        component = layer.component or model.denoiser
        if component not in model.components:
            kind = {"unet": "a UNet model", "transformer": "a transformer model"}.get(component, component)
            raise LoraError(f"'{name}' is not a LoRA for {model.label} (its layers are for {kind}; this one takes "
                            f"LoRAs on {', '.join(sorted(model.components))}).")
    part = {layer.name: model.components[layer.component or model.denoiser] for layer in layers}
    wrong = [layer for layer in layers if (layer.kind, layer.in_features, layer.out_features)
             not in part[layer.name].shapes]
    if wrong:
        raise LoraError(f"'{name}' is not a LoRA for {model.label} ({_why(wrong, model)}).")
    dotted = [(layer, path) for layer in layers if (path := _module_path(layer)) is not None]
    unknown = [path for layer, path in dotted if path not in part[layer.name].names]
    if dotted and len(unknown) * 2 > len(dotted):
        raise LoraError(f"'{name}' is not a LoRA for {model.label} (its layers are for modules the model does not "
                        f"have, such as '{unknown[0]}').")


def _why(wrong: list[LoraLayer], model: ModelLayers) -> str:
    first = wrong[0]
    component = first.component or model.denoiser
    if component in _TEXT_ENCODERS:
        width = Counter(layer.in_features for layer in wrong).most_common(1)[0][0]
        return (f"its layers are for a {width}-wide text encoder; the model's {component} is "
                f"{model.components[component].width} wide")
    cross = [layer for layer in wrong if re.search(r"attn2[._]to_[kv]", layer.name)]
    expected = model.components[component].cross_attention
    if cross and expected:
        return f"its cross-attention layers take {cross[0].in_features}-wide text features; the model's take {expected}"
    return (f"its {component} layers are {first.in_features}→{first.out_features} wide, which no layer of the "
            f"model's {component} is")


def _module_path(layer: LoraLayer) -> str | None:
    """The module a diffusers/PEFT-format name points at (``unet.`` + path); None for other formats."""
    for prefix in ("unet.", "transformer.", "text_encoder.", "text_encoder_2."):
        if layer.name.startswith(prefix) and not layer.name.endswith(("_lora", ".processor")):
            return layer.name[len(prefix):]
    return None


def lora_modules(pipeline_class: str) -> tuple[str, ...]:
    """The components diffusers loads LoRAs into for this pipeline class; () when it has no LoRA loader."""
    import diffusers

    cls = getattr(diffusers, pipeline_class, None)
    if cls is None or not hasattr(cls, "load_lora_weights"):
        return ()
    return tuple(getattr(cls, "_lora_loadable_modules", ()) or ())


def require_peft() -> None:
    import importlib.util  # diffusers loads LoRAs through peft

    if importlib.util.find_spec("peft") is None:
        raise LoraError("LoRAs need the peft package, which requirements.txt pins: run ./launch.sh once to install it.")


def no_lora_support(ref: ModelRef) -> LoraError:
    return LoraError(f"{ref.label or ref.key} cannot take LoRAs (diffusers has no LoRA loader for "
                     f"{ref.pipeline_class}); remove the LoRA or choose another engine.")


def model_layers(ref: ModelRef, folder: Path) -> ModelLayers:
    """The LoRA-loadable components of the pipeline in ``folder``, from their configs (meta device)."""
    modules = lora_modules(ref.pipeline_class)
    if not modules:
        raise no_lora_support(ref)
    index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    components: dict[str, ComponentLayers] = {}
    for component in modules:
        entry = index.get(component)
        config = Path(folder) / component / "config.json"
        if isinstance(entry, list) and entry[0] is not None and config.is_file():
            components[component] = _component_layers(entry[0], entry[1], str(config), config.stat().st_mtime_ns)
    return ModelLayers(ref.label or ref.key, components)


@lru_cache(maxsize=16)
def _component_layers(library: str, class_name: str, config: str, mtime_ns: int) -> ComponentLayers:
    """One component's layers, built from its config without weights (accelerate's empty weights)."""
    import importlib

    from accelerate import init_empty_weights

    cls = getattr(importlib.import_module(library), class_name)
    folder = str(Path(config).parent)
    with init_empty_weights():
        if library == "diffusers":
            model = cls.from_config(cls.load_config(folder))
        else:
            model = cls(cls.config_class.from_pretrained(folder))
    return module_layers(model)


def module_layers(model: Any) -> ComponentLayers:
    """The Linear and Conv layers of ``model`` (a loaded LoRA's own low-rank layers left out)."""
    import torch

    shapes, names = set(), set()
    for name, module in model.named_modules():
        if ".lora_" in name or name.startswith("lora_") or name.endswith(".base_layer"):
            continue
        names.add(name)
        base = getattr(module, "base_layer", module)  # a layer a loaded LoRA wraps
        if isinstance(base, torch.nn.Linear):
            shapes.add(("linear", base.in_features, base.out_features))
        elif isinstance(base, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            shapes.add(("conv", base.in_channels, base.out_channels))
    widths = Counter(in_features for kind, in_features, _ in shapes if kind == "linear")
    width = getattr(model.config, "hidden_size", None) or (widths.most_common(1)[0][0] if widths else 0)
    cross = getattr(model.config, "cross_attention_dim", None)
    return ComponentLayers(frozenset(shapes), frozenset(names), int(width), cross if isinstance(cross, int) else None)


# --- a job's choices -----------------------------------------------------------------------------------

def check_loras(choices: tuple[LoraChoice, ...] | list[LoraChoice], ref: ModelRef, models_root: Path,
                target: str, folder: Path | None) -> list[LoraRecord]:
    """The records of the ``target`` choices, each file checked (and fitted to ``folder``'s model if given)."""
    picked = [choice for choice in choices if choice.target == target]
    if not picked:
        return []
    require_peft()
    model = model_layers(ref, folder) if folder is not None else None
    if model is None and not lora_modules(ref.pipeline_class):
        raise no_lora_support(ref)
    records: list[LoraRecord] = []
    for choice in picked:
        if any(record.file == choice.file for record in records):
            raise LoraError(f"'{choice.file}' is chosen twice for the {target}; choose it once with one weight.")
        path = lora_path(models_root, choice.file)
        layers = lora_layers(path)
        if model is not None:
            check_fits(choice.file, layers, model)
        records.append(LoraRecord(choice.file, file_sha256(path), choice.weight, target))
    return records


def check_spec(spec: JobSpec, models_root: Path) -> None:
    """Admission: every LoRA of ``spec`` exists, is a LoRA, and fits the model it will be applied to.

    A real model that is not downloaded yet cannot be measured: its LoRAs are checked as files only (the
    job fails on the missing model anyway). The tiny test set is built if needed (seconds).
    """
    if not spec.loras:
        return
    if any(choice.target == "motion" for choice in spec.loras) and spec.engine == "auto":
        raise LoraError("A LoRA for the motion model needs the engine chosen (ltx, wan, skyreels or cogvideox): "
                        "'auto' may pick a model it was not made for.")
    targets = {"keyframes": keyframe_model_for(spec.model_set, spec.preset)}
    if spec.engine != "auto":
        targets["motion"] = motion_model_for(spec.model_set, spec.engine, spec.preset)
    for target, ref in targets.items():
        if any(choice.target == target for choice in spec.loras):
            check_loras(spec.loras, ref, models_root, target, local_model_folder(ref, models_root))


def local_model_folder(ref: ModelRef, models_root: Path) -> Path | None:
    """The model's folder on disk (the tiny set built on demand), or None when it is not downloaded."""
    from backend.models.loader import resolve_model_folder
    from backend.models.store import local_folder

    return resolve_model_folder(ref, models_root) if ref.is_tiny else local_folder(ref, models_root)


# --- uploads and deletes (the Models page) -------------------------------------------------------------

def save_uploaded(data: bytes, client_name: str, models_root: Path) -> LoraFile:
    """Check an uploaded file by content (a LoRA's safetensors header) and store it under a cleaned name."""
    if not data:
        raise LoraError("The file is empty (0 bytes).")
    if len(data) > MAX_UPLOAD_BYTES:
        raise LoraError(f"The file is {len(data) / 2**20:.0f} MB; a LoRA file may be at most "
                        f"{MAX_UPLOAD_BYTES // 2**30} GB.")
    shown = clean_name(client_name)
    folder = lora_folder(models_root)
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        layers_from_shapes(shown, read_header(tmp))  # LoraError: not safetensors, or no LoRA layers
        digest = hashlib.sha256(data).hexdigest()
        target = folder / shown
        if target.exists():
            if target.is_file() and file_sha256(target) == digest:
                tmp.unlink()
                return LoraFile(target.name, target, target.stat().st_size, digest)
            target = folder / f"{shown[: -len('.safetensors')]}-{digest[:8]}.safetensors"
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return LoraFile(target.name, target, len(data), digest)


def clean_name(client_name: object) -> str:
    """A safe file name from what a browser called the file: letters, digits, '-', '_' and '.', no folders."""
    text = str(client_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = text[: -len(".safetensors")] if text.lower().endswith(".safetensors") else text
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-_")[:MAX_NAME] or "lora"
    return f"{stem}.safetensors"


def delete_lora(models_root: Path, name: str) -> None:
    """Delete one LoRA file from the LoRA folder (never anything outside it)."""
    lora_path(models_root, name).unlink()
