"""Synthetic denoiser inputs: one forward's arguments for a stage, for FLOP counting without running a pipeline.

``--flops-only`` counts them on the ``meta`` device (no weights, no GPU); at tiny size they must count the
same FLOPs as the call the pipeline really makes (tests/test_bench_pipeline.py checks that per stage).
"""

from __future__ import annotations

from typing import Any

from bench.configs import StageShape

# Pipelines that run the conditional and the unconditional pass as two denoiser calls of batch 1 (the
# others batch them as one call of 2; SkyReels' diffusion-forcing forward does not take a batch of 2 at all).
SPLIT_CFG = ("wan", "skyreels")


def calls_per_step(stage: StageShape) -> int:
    return 2 if stage.stage in SPLIT_CFG else 1


def denoiser_inputs(stage: StageShape, denoiser: Any, *, batch: int = 2, device: str = "meta",
                    dtype: Any = None) -> tuple[tuple, dict]:
    """One denoiser call's arguments as the pipeline passes them for ``stage``, with the CFG batch.

    Where the pipeline splits CFG (``SPLIT_CFG``) the call has batch ``batch // 2`` and a step is
    ``calls_per_step`` such calls.
    """
    import torch

    if stage.stage in SPLIT_CFG or not stage.ref.cfg:  # split CFG, or none at all (step-distilled, guidance 1)
        batch = max(1, batch // 2)

    dtype = dtype or denoiser.dtype
    cfg = denoiser.config
    h, w = stage.height // 8, stage.width // 8
    t = torch.full((batch,), 500.0, device=device)

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, device=device, dtype=dtype)

    if stage.stage == "keyframes":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        added = {"text_embeds": rand(batch, pooled), "time_ids": rand(batch, 6)}
        return (rand(batch, cfg.in_channels, h, w), t), {
            "encoder_hidden_states": rand(batch, 77, cfg.cross_attention_dim), "added_cond_kwargs": added}
    if stage.stage == "svd":
        return (rand(batch, stage.frames, cfg.in_channels, h, w), t), {
            "encoder_hidden_states": rand(batch, 1, cfg.cross_attention_dim), "added_time_ids": rand(batch, 3)}
    if stage.stage == "cogvideox":
        latent_frames = (stage.frames - 1) // cfg.temporal_compression_ratio + 1
        tokens = latent_frames * (h // cfg.patch_size) * (w // cfg.patch_size)
        head = cfg.attention_head_dim
        rope = (rand(tokens, head), rand(tokens, head)) if cfg.use_rotary_positional_embeddings else None
        return (), {"hidden_states": rand(batch, latent_frames, cfg.in_channels, h, w),
                    "encoder_hidden_states": rand(batch, cfg.max_text_seq_length, cfg.text_embed_dim),
                    "timestep": t.long(), "image_rotary_emb": rope}
    seq = stage.ref.max_sequence_length or 128
    if stage.stage == "ltx":  # packed tokens: x32 spatial and x8 temporal compression, patch size 1
        tokens = ((stage.frames - 1) // 8 + 1) * (stage.height // 32) * (stage.width // 32)
        return (), {"hidden_states": rand(batch, tokens, cfg.in_channels),
                    "encoder_hidden_states": rand(batch, seq, cfg.caption_channels),
                    "timestep": torch.full((batch, tokens), 500.0, device=device),
                    "encoder_attention_mask": torch.ones(batch, seq, device=device),
                    "video_coords": torch.zeros(batch, 3, tokens, device=device)}
    # Wan-family transformers: x8 spatial and x4 temporal compression, patches of 1x2x2.
    latent = (batch, cfg.in_channels, (stage.frames - 1) // 4 + 1, h, w)
    kwargs: dict[str, Any] = {"hidden_states": rand(*latent), "encoder_hidden_states": rand(batch, seq, cfg.text_dim)}
    if stage.stage == "wan":  # FLF2V: the CLIP tokens of the start and of the end image, per sample
        images = 2 if cfg.pos_embed_seq_len else 1
        kwargs.update(timestep=t.long(), encoder_hidden_states_image=rand(
            batch * images, (cfg.pos_embed_seq_len or 257) // images, cfg.image_dim))
        return (), kwargs
    # SkyReels diffusion forcing: a timestep per latent frame, and the fps embedding's index (1: not 16 fps).
    kwargs.update(timestep=t.long()[:, None].expand(batch, latent[2]).contiguous(), enable_diffusion_forcing=True,
                  fps=[1] * batch)
    return (), kwargs
