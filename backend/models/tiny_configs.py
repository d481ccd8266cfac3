"""Builders for the tiny random-weight pipelines (test models — output is noise).

Each builder returns a diffusers pipeline made of small components with random weights. The
torch seed is reset before every component, so a rebuild gives identical weights no matter which
components were built before it. Sizes follow shared/notes/tiny-models.md; the comments say which
numbers are forced by the pipeline code and which are free choices.

torch, diffusers and transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.models.tiny_tokenizers import build_clip_tokenizer, build_t5_tokenizer
from backend.models.tiny_video_configs import build_ltx_condition, build_skyreels_df

WEIGHT_SEED = 0
# Real checkpoints of these families share this noise schedule.
_SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _seeded(factory: Callable[[], Any]) -> Any:
    """Build one component right after reseeding, so its weights do not depend on build order."""
    import torch

    torch.manual_seed(WEIGHT_SEED)
    return factory().eval()


# ---- shared components ----------------------------------------------------------------------


def _clip_text_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    # Token ids must match the tokenizer: with an eos id other than 2, pooling uses the EOS position.
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _t5_config_kwargs(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "feed_forward_proj": "gated-gelu",
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def t5_text_encoder(workdir: Path, *, umt5: bool = False) -> tuple[Any, Any]:
    """The offline T5 tokenizer and a tiny seeded T5 (or UMT5, for Wan-family models) encoder for it."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    tokenizer = build_t5_tokenizer(workdir)
    model, config = (UMT5EncoderModel, UMT5Config) if umt5 else (T5EncoderModel, T5Config)
    return tokenizer, _seeded(lambda: model(config(**_t5_config_kwargs(tokenizer))))


def tiny_wan_vae() -> Any:
    """The Wan 2.1 VAE family at tiny size (x8 spatial, x4 temporal, z_dim 16 like the real one's statistics)."""
    from diffusers import AutoencoderKLWan

    return _seeded(lambda: AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                            temperal_downsample=[False, True, True]))


def _clip_image_processor(size: int) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _sd_vae(block_out_channels: tuple[int, ...], scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    # Four blocks keep the x8 spatial scale factor of the real VAEs.
    return _seeded(
        lambda: AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
            up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
            block_out_channels=block_out_channels,
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
            scaling_factor=scaling_factor,
        )
    )


# ---- pipelines ------------------------------------------------------------------------------


def build_sdxl(workdir: Path) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_clip_tokenizer(workdir)
    text_encoder = _seeded(lambda: CLIPTextModel(_clip_text_config(tokenizer)))
    text_encoder_2 = _seeded(lambda: CLIPTextModelWithProjection(_clip_text_config(tokenizer)))
    unet = _seeded(
        lambda: UNet2DConditionModel(
            sample_size=8,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            cross_attention_dim=64,  # both encoders' hidden states, concatenated (32 + 32)
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=80,  # 6 time ids x 8 + pooled projection 32
            norm_num_groups=8,
        )
    )
    scheduler = EulerDiscreteScheduler(**_SD_BETAS, steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(
        vae=_sd_vae((8, 8, 16, 16), scaling_factor=0.13025),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
        add_watermarker=False,
    )


def build_svd(workdir: Path) -> Any:
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    # Channel counts are multiples of 32: GroupNorm(32) is fixed inside the spatio-temporal blocks.
    unet = _seeded(
        lambda: UNetSpatioTemporalConditionModel(
            sample_size=8,
            in_channels=8,  # noisy latents + conditioning-image latents
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            num_attention_heads=(2, 4),
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=24,  # fps, motion bucket, noise aug x 8
            num_frames=8,
        )
    )
    vae = _seeded(
        lambda: AutoencoderKLTemporalDecoder(
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=4,
        )
    )
    # The pipeline always resizes the conditioning image to 224, so the encoder must take 224.
    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
    )
    image_encoder = _seeded(lambda: CLIPVisionModelWithProjection(vision_config))
    scheduler = EulerDiscreteScheduler(
        **_SD_BETAS,
        prediction_type="v_prediction",
        use_karras_sigmas=True,
        timestep_type="continuous",
        sigma_min=0.002,
        sigma_max=700.0,
        interpolation_type="linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=_clip_image_processor(224),
    )


# (width, height, frames, fps) of the tiny CogVideoX models. Frame counts 8k+1 (an odd latent count)
# decode to exactly that many frames; others come back rounded (13 -> 16, 10 -> 9).
COGVIDEOX_NATIVE = (96, 64, 9, 4)


def _build_cogvideox(workdir: Path, image_to_video: bool) -> Any:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    tokenizer, text_encoder = t5_text_encoder(workdir)
    vae = _seeded(
        lambda: AutoencoderKLCogVideoX(
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        )
    )
    # RoPE plus learned positional embeddings, as THUDM/CogVideoX-5b-I2V. The learned table locks the
    # resolution: any other width/height raises in the patch embedding. sample_* are in latent units
    # (pixels / 8). At any frame count other than COGVIDEOX_NATIVE's, diffusers silently replaces the
    # learned table by sin-cos embeddings; sample_frames must be 4k+1 to be reachable at all.
    width, height, frames, _fps = COGVIDEOX_NATIVE
    transformer = _seeded(
        lambda: CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=8 if image_to_video else 4,  # I2V concatenates the image latents
            out_channels=4,
            time_embed_dim=16,
            text_embed_dim=32,
            num_layers=2,
            patch_size=2,
            max_text_seq_length=16,  # callers must pass max_sequence_length=16
            sample_width=width // 8,
            sample_height=height // 8,
            sample_frames=frames,
            temporal_compression_ratio=4,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        )
    )
    scheduler = CogVideoXDDIMScheduler(
        **_SD_BETAS,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )
    pipeline_class = CogVideoXImageToVideoPipeline if image_to_video else CogVideoXPipeline
    return pipeline_class(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def build_cogvideox_t2v(workdir: Path) -> Any:
    return _build_cogvideox(workdir, image_to_video=False)


def build_cogvideox_i2v(workdir: Path) -> Any:
    return _build_cogvideox(workdir, image_to_video=True)


def build_wan_flf2v(workdir: Path) -> Any:
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModel

    tokenizer, text_encoder = t5_text_encoder(workdir, umt5=True)
    # 32 px images in 8 px patches: 16 patches + CLS = 17 tokens per image.
    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    image_encoder = _seeded(lambda: CLIPVisionModel(vision_config))
    vae = tiny_wan_vae()
    transformer = _seeded(
        lambda: WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=36,  # noisy latents 16 + first/last frame latents 16 + mask 4
            out_channels=16,
            text_dim=32,
            freq_dim=32,
            ffn_dim=64,
            num_layers=2,
            image_dim=32,
            added_kv_proj_dim=32,
            rope_max_seq_len=32,
            pos_embed_seq_len=34,  # FLF2V: two images x 17 tokens
        )
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=16.0)
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        image_processor=_clip_image_processor(32),
        image_encoder=image_encoder,
        transformer=transformer,
    )


BUILDERS: dict[str, Callable[[Path], Any]] = {
    "sdxl": build_sdxl,
    "svd": build_svd,
    "cogvideox-t2v": build_cogvideox_t2v,
    "cogvideox-i2v": build_cogvideox_i2v,
    "wan-flf2v": build_wan_flf2v,
    "ltx-condition": build_ltx_condition,
    "skyreels-df": build_skyreels_df,
}
