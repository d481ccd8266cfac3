"""Builders for the tiny LTX-Video (condition) and SkyReels-V2 diffusion-forcing pipelines.

Test models — output is noise. Split from tiny_configs.py to keep each file short; the shared
helpers (seeded construction, T5 sizes) are imported inside the builders so that importing either
module stays cheap and the two modules can import each other in any order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Native geometry of the tiny models (width, height, frames, fps): what the registry should list.
LTX_NATIVE = (96, 64, 33, 24)  # 3:2 like the real 768x512; any 8k+1 count works (33: a 3 s clip is 3 windows)
SKYREELS_NATIVE = (64, 48, 17, 24)  # 17 = 4k+1 frames -> 5 latent frames = base_num_frames


def build_ltx_condition(workdir: Path) -> Any:
    """LTXConditionPipeline with an LTX-Video 0.9.5-style VAE (decode timestep conditioning)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    from backend.models.tiny_configs import _seeded, t5_text_encoder

    tokenizer, text_encoder = t5_text_encoder(workdir)
    # Compression stays at the real x32 spatial / x8 temporal: the pipeline demands width and height
    # divisible by 32 and 8k+1 frames whatever the VAE does. Four down blocks (patchify 4 x 8 spatial,
    # 8 temporal) and three x2 up blocks with upsample_factor 2; with timestep conditioning each up
    # block must keep its channel count, hence the doubling decoder channels.
    vae = _seeded(
        lambda: AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 16, 16, 16),
            down_block_types=("LTXVideo095DownBlock3D",) * 4,
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            spatio_temporal_scaling=(True, True, True, True),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_block_out_channels=(8, 16, 32),
            decoder_layers_per_block=(1, 1, 1, 1),
            decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False, False, False, False),
            upsample_residual=(True, True, True),
            upsample_factor=(2, 2, 2),
            timestep_conditioning=True,  # the pipeline's decode_timestep / decode_noise_scale apply
            patch_size=4,
            patch_size_t=1,
            spatial_compression_ratio=32,  # the 0.9.5 blocks make the formula wrong: set explicitly
            temporal_compression_ratio=8,
        )
    )
    transformer = _seeded(
        lambda: LTXVideoTransformer3DModel(
            in_channels=8,  # = VAE latent channels (patch size 1)
            out_channels=8,
            num_attention_heads=2,
            attention_head_dim=16,
            cross_attention_dim=32,  # = inner dim (heads x head dim), as in the real model
            caption_channels=32,  # = T5 d_model
            num_layers=1,
        )
    )
    # The real 0.9.5 schedule; the pipeline passes its own timesteps, so shifting barely matters.
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=False,
        shift_terminal=0.1,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
    )
    return LTXConditionPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )


def build_skyreels_df(workdir: Path) -> Any:
    """SkyReels-V2 diffusion forcing, saved as the I2V pipeline; V2V shares the same components."""
    from diffusers import (
        SkyReelsV2DiffusionForcingImageToVideoPipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
    )

    from backend.models.tiny_configs import _seeded, t5_text_encoder, tiny_wan_vae

    tokenizer, text_encoder = t5_text_encoder(workdir, umt5=True)
    vae = tiny_wan_vae()
    # The DF checkpoints have no image encoder: the first frame enters as clean prefix latents.
    transformer = _seeded(
        lambda: SkyReelsV2Transformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=16,
            out_channels=16,
            text_dim=32,
            freq_dim=32,
            ffn_dim=64,
            num_layers=2,
            rope_max_seq_len=32,
            inject_sample_info=True,  # as DF-1.3B-540P: the call's fps picks one of two embeddings
            num_frame_per_block=1,  # synchronous by default; causal_block_size in a call overrides it
        )
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    return SkyReelsV2DiffusionForcingImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler
    )
