"""Full-size configs of the motion engines: LTX-Video 2B and 13B distilled, Wan 2.1 FLF2V 14B, SkyReels-V2 DF 1.3B.

Written from the models' published ``config.json`` files (diffusers format; no hub access here), as
``bench.configs`` does for SDXL, SVD and CogVideoX: random weights, real architectures, so a denoising
step costs what the real one costs. Where a value is not certain it says so; none of the uncertain ones
(scheduler shifts) changes the work of a call. Also here: each engine's plain diffusers call.
"""

from __future__ import annotations

from typing import Any

from bench.configs import PROMPT, SEED, SVD_IMAGE_ENCODER, T5_XXL, StageShape, _seeded

# ---- LTX-Video 0.9.5 (Lightricks/LTX-Video-0.9.5, the studio's "ltx-2b") ----------------------------

# transformer/config.json of 0.9.5 (the same 2B layout as 0.9.0/0.9.1): 28 layers of 32 x 64.
LTX_TRANSFORMER: dict[str, Any] = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
    attention_head_dim=64, cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate",
    qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
    attention_bias=True, attention_out_bias=True,
)
# vae/config.json of 0.9.5: the timestep-conditioned VAE, x32 spatial and x8 temporal compression.
LTX_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
    patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True,
    decoder_causal=False, spatial_compression_ratio=32, temporal_compression_ratio=8,
)
# scheduler_config.json of 0.9.5 as recalled (use_dynamic_shifting not certain): the pipeline passes its
# own sigmas, and a flow-matching Euler step is one denoiser call whatever the shift.
LTX_SCHEDULER: dict[str, Any] = dict(shift=1.0, use_dynamic_shifting=False, shift_terminal=0.1, base_shift=0.95,
                                     max_shift=2.05, base_image_seq_len=1024, max_image_seq_len=4096)

# ---- LTX-Video 0.9.7 13B distilled (Lightricks/LTX-Video-0.9.7-distilled, "ltx-13b-distilled", quick preset) --

# transformer/config.json of 0.9.7 (dev and distilled share the architecture): 48 layers of 32 x 128, text
# cross-attention at 4096. Source: diffusers scripts/convert_ltx_to_diffusers.py, get_transformer_config("0.9.7")
# (added with the 0.9.7 support, huggingface/diffusers#11516, commit 06fee551); the same values are the config
# Lightricks/LTX-Video-Trainer (src/ltxv_trainer/model_loader.py, _load_ltxv_13b_transformer) loads both 13B
# 0.9.7 checkpoints with, and the original-format 13B config (AI-Hypercomputer/maxdiffusion,
# src/maxdiffusion/models/ltx_video/xora_v1.2-13B-balanced-128.json) has the same 48 x 32 x 128 / 4096.
# Every value not named here is the 0.9.5 one, in both sources. Built: 13.043 B (the "13B").
LTX13B_TRANSFORMER: dict[str, Any] = dict(LTX_TRANSFORMER, attention_head_dim=128, cross_attention_dim=4096,
                                          num_layers=48)
# vae/config.json of 0.9.7 is the 0.9.5 VAE (1.247 B, not 0.9.0's 0.419 B): get_vae_config("0.9.7") in the
# same script has exactly the 0.9.5 values, and LTX-Video-Trainer's load_vae loads the VAE of the 13B 0.9.7
# versions from Lightricks/LTX-Video-0.9.5/vae ("share the same VAE as LTXV_2B_095"). The Hub file itself
# could not be read here (no hub access).
LTX13B_VAE: dict[str, Any] = LTX_VAE
# scheduler: the script saves 0.9.5 and 0.9.7 with FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False),
# the other values at their defaults; the distilled repo's own file is not known here. LTXConditionPipeline
# passes its own sigmas, so one Euler step is one denoiser call whatever the shift.
LTX13B_SCHEDULER: dict[str, Any] = dict(use_dynamic_shifting=False)

# ---- Wan 2.1 first-last-frame 14B 720P (Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers, "wan-flf2v-14b") ---------

# transformer/config.json: the I2V-14B layout (40 layers of 40 x 128, 36 input channels: noise 16 + the
# encoded first/last-frame video 16 + mask 4) with learned positions for two images (2 x 257 CLIP tokens).
WAN_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120, rope_max_seq_len=1024,
    pos_embed_seq_len=2 * 257,
)
# vae/config.json: the Wan 2.1 VAE (x8 spatial, x4 temporal, 16 latent channels), shared by SkyReels-V2.
# Lists, not tuples: the VAE concatenates them.
WAN_VAE: dict[str, Any] = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                               temperal_downsample=[False, True, True], dropout=0.0)
# image_encoder/config.json: the ViT-H/14 vision tower (open_clip ViT-H-14 as a CLIPVisionModel, no
# projection used): the same tower as SVD's image encoder. The pipeline takes its penultimate hidden states.
WAN_IMAGE_ENCODER: dict[str, Any] = SVD_IMAGE_ENCODER
# text_encoder/config.json: google/umt5-xxl's encoder (Wan and SkyReels-V2 share it).
UMT5_XXL: dict[str, Any] = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                                feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                                relative_attention_max_distance=128, layer_norm_epsilon=1e-6)
# scheduler_config.json: UniPC on flow sigmas. flow_shift 16 is the original FLF2V sampling shift; whether
# the diffusers repo ships 16.0 or the I2V-720P 5.0 is not certain here. Either way one call per step.
WAN_SCHEDULER: dict[str, Any] = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=16.0,
                                     num_train_timesteps=1000, solver_order=2)

# ---- SkyReels-V2 diffusion forcing 1.3B 540P (Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers) ------------------

# transformer/config.json: the Wan 2.1 1.3B layout (30 layers of 12 x 128) with the fps embedding
# (inject_sample_info). num_frame_per_block is not certain; the studio passes causal_block_size=1 anyway.
SKYREELS_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024, inject_sample_info=True,
    num_frame_per_block=1,
)
# flow_shift 8.0 is the SkyReels-V2 DF default as recalled, not certain; it does not change the work.
SKYREELS_SCHEDULER: dict[str, Any] = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0,
                                          num_train_timesteps=1000, solver_order=2)

ENGINE_KEYS = ("ltx-2b", "ltx-13b-distilled", "wan-flf2v-14b", "skyreels-v2-df-1.3b")
# The tiny twin whose offline tokenizer the full-size pipeline borrows.
TOKENIZERS = {"ltx-2b": "ltx-condition", "ltx-13b-distilled": "ltx-condition", "wan-flf2v-14b": "wan-flf2v",
              "skyreels-v2-df-1.3b": "skyreels-df"}
# The LTX presets: (transformer, VAE, scheduler) configs; both load as LTXConditionPipeline with T5-XXL.
LTX_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "ltx-2b": (LTX_TRANSFORMER, LTX_VAE, LTX_SCHEDULER),
    "ltx-13b-distilled": (LTX13B_TRANSFORMER, LTX13B_VAE, LTX13B_SCHEDULER),
}


def engine_modules(model_key: str, tokenizer: Any) -> dict[str, Any]:
    """The weight-bearing modules of ``model_key`` (call under ``configs.built_on``)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        AutoencoderKLWan,
        LTXVideoTransformer3DModel,
        SkyReelsV2Transformer3DModel,
        WanTransformer3DModel,
    )
    from transformers import CLIPVisionConfig, CLIPVisionModel, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if model_key in LTX_CONFIGS:  # T5-XXL v1.1 encoder, as CogVideoX (the 2B and the 13B share it)
        transformer, vae, _ = LTX_CONFIGS[model_key]
        return {"text_encoder": _seeded(lambda: T5EncoderModel(T5Config(**T5_XXL, **ids))),
                "vae": _seeded(lambda: AutoencoderKLLTXVideo(**vae)),
                "transformer": _seeded(lambda: LTXVideoTransformer3DModel(**transformer))}
    modules = {"text_encoder": _seeded(lambda: UMT5EncoderModel(UMT5Config(**UMT5_XXL, **ids))),
               "vae": _seeded(lambda: AutoencoderKLWan(**WAN_VAE))}
    if model_key == "wan-flf2v-14b":
        modules["image_encoder"] = _seeded(lambda: CLIPVisionModel(CLIPVisionConfig(**WAN_IMAGE_ENCODER)))
        modules["transformer"] = _seeded(lambda: WanTransformer3DModel(**WAN_TRANSFORMER))
    else:  # the DF checkpoints have no image encoder: the first frame enters as clean prefix latents
        modules["transformer"] = _seeded(lambda: SkyReelsV2Transformer3DModel(**SKYREELS_TRANSFORMER))
    return modules


def engine_pipeline(model_key: str, modules: dict[str, Any], tokenizer: Any) -> Any:
    """The pipeline class the studio loads for ``model_key`` (registry ``pipeline_class``), around ``modules``."""
    import diffusers
    from transformers import CLIPImageProcessor

    if model_key in LTX_CONFIGS:
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**LTX_CONFIGS[model_key][2])
        return diffusers.LTXConditionPipeline(**modules, tokenizer=tokenizer, scheduler=scheduler)
    if model_key == "wan-flf2v-14b":
        processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
        return diffusers.WanImageToVideoPipeline(
            **modules, tokenizer=tokenizer, image_processor=processor,
            scheduler=diffusers.UniPCMultistepScheduler(**WAN_SCHEDULER))
    return diffusers.SkyReelsV2DiffusionForcingImageToVideoPipeline(
        **modules, tokenizer=tokenizer, scheduler=diffusers.UniPCMultistepScheduler(**SKYREELS_SCHEDULER))


def plain_engine_call(pipe: Any, shape: StageShape, images: list[Any], negative: str, common: dict[str, Any]) -> Any:
    """The plain diffusers call of an engine, with the arguments the studio's engine passes (same work).

    ``images``: the keyframes, at the call's size (Wan: the start and the end keyframe).
    """
    import torch

    from backend.stages.engines import ltx, skyreels, wan

    ref = shape.ref
    text = dict(prompt=PROMPT, negative_prompt=negative, num_frames=shape.frames,
                max_sequence_length=ref.max_sequence_length, **common)
    if shape.stage == "ltx":
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        # A step-distilled preset (cfg=False, the 13B distilled) runs at guidance 1.0: no CFG batch, as the studio.
        return pipe(conditions=[LTXVideoCondition(image=images[0], frame_index=0)], frame_rate=ref.fps,
                    guidance_scale=ltx.GUIDANCE if ref.cfg else 1.0, decode_timestep=ltx.DECODE_TIMESTEP,
                    image_cond_noise_scale=ltx.IMAGE_COND_NOISE_SCALE, **text).frames[0]
    if shape.stage == "wan":
        return pipe(image=images[0], last_image=images[-1], guidance_scale=wan.GUIDANCE, **text).frames[0]
    torch.manual_seed(SEED)  # diffusion forcing draws its prefix noise from the global generator
    return pipe(image=images[0], base_num_frames=shape.frames, guidance_scale=skyreels.GUIDANCE, fps=ref.fps,
                causal_block_size=skyreels.CAUSAL_BLOCK, ar_step=0, **text).frames[0]
