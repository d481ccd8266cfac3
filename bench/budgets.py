"""Memory budgets: the studio's plans under a capped allocator (CUDA only).

Each stage (and, for chosen budgets, the whole video) runs through the studio's own code under
``torch.cuda.set_per_process_memory_fraction(budget / total)``, with the plan the studio chooses from
``detect_hardware(vram_gb=budget)``. Split from ``bench.flops``; rows are checkpointed one by one, so a run
cut short by a timeout keeps the budgets it finished.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bench.flops import GIB, DenoiserProbe

if TYPE_CHECKING:  # pragma: no cover
    from bench.pipeline import Bench


def out_of_memory(exc: BaseException) -> bool:
    """An OOM the harness reports as a failed row: torch's, or the memory manager's after every step-down."""
    from backend.errors import OutOfMemoryAfterAllPlans
    from backend.memory import is_oom_error

    return isinstance(exc, OutOfMemoryAfterAllPlans) or is_oom_error(exc)


def budget_rows(bench: "Bench") -> dict[str, Any]:
    """Each stage (and the whole video) under ``torch.cuda.set_per_process_memory_fraction`` budgets.

    The plan comes from ``detect_hardware(vram_gb=budget)``, as the studio would choose it on such a card;
    running out of memory after every step-down is a failed row, not a crash of the harness.
    """
    if bench.device != "cuda":
        return {"skipped": "skipped: needs CUDA (torch.cuda.set_per_process_memory_fraction)", "rows": []}
    import torch

    from backend.memory import detect_hardware, free_memory
    from backend.models.registry import model_for
    from backend.stages import motion

    total = torch.cuda.get_device_properties(0).total_memory
    capability = tuple(torch.cuda.get_device_capability())
    bench.factory.release()
    keyframe_key = model_for(bench.model_set, "keyframes").key
    rows: list[dict[str, Any]] = []
    result = {"rows": rows, "note": "the CUDA context and cuBLAS workspace are outside the budget"}
    for gb in bench.args.budgets:
        hardware = detect_hardware(vram_gb=gb, compute_capability=capability)

        def motion_key(engine: str, preset: str) -> str:  # the planner may substitute another engine on a small card
            return motion.choose_motion(bench.model_set, engine, preset, 24, hardware).ref.key

        jobs = [(s.stage, [keyframe_key if s.stage == "keyframes" else motion_key(s.stage, s.preset)],
                 lambda parked, s=s: _budget_stage(bench, s, parked, hardware)) for s in bench.shapes()]
        if gb in bench.args.budget_video:
            keys = [keyframe_key, motion_key("svd", "standard")]
            jobs.append(("video", keys, lambda parked: _budget_video(bench, parked, hardware)))
        for stage, keys, job in jobs:
            row: dict[str, Any] = {"budget_gb": gb, "stage": stage, "models": keys}
            try:  # built on the GPU (quick), parked in RAM before the cap applies: placement is the plan's job
                parked = {key: bench.factory.fresh(key).to("cpu") for key in keys}
            except ValueError as exc:  # a substitute with no full-size config (the quick preset's LTX 13B)
                rows.append({**row, "ok": False, "error": str(exc)})
                continue
            free_memory()
            torch.cuda.set_per_process_memory_fraction(min(1.0, gb * GIB / total))
            try:
                row.update(job(parked), ok=True)
            except Exception as exc:  # noqa: BLE001 - a failed row, not a crash that costs the other budgets
                if not out_of_memory(exc):  # a bug, not a budget verdict: the traceback goes to the log
                    logging.getLogger(__name__).exception("budget %s GB, %s failed", gb, stage)
                prefix = "" if out_of_memory(exc) else "failed (not out of memory): "
                row.update(ok=False, error=prefix + (str(exc).splitlines() or [type(exc).__name__])[0][:300])
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
                del parked
                free_memory()
            rows.append(row)
            bench.checkpoint("budgets", result)
    return result


def _budget_video(bench: "Bench", parked: dict[str, Any], hardware: Any) -> dict[str, Any]:
    row = bench.video_row(hardware, parked)
    plan = "; ".join(f"{stage}: {plan}" for stage, plan in row["plans"].items())
    return {**row, "seconds": row["studio"]["seconds"], "peak_vram_gb": row["studio"]["peak_vram_gb"], "plan": plan}


def _budget_stage(bench: "Bench", shape: Any, parked: dict[str, Any], hardware: Any) -> dict[str, Any]:
    from backend.memory import MemoryPlan
    from bench.configs import denoiser_of

    steps_run = min(shape.steps, bench.args.budget_steps)
    pipe = next(iter(parked.values()))
    probe = DenoiserProbe(denoiser_of(pipe))
    folder = bench.workdir(shape, hardware)
    run = lambda clock: bench.studio(shape, steps_run, folder, clock, bench.manager(pipe, hardware))  # noqa: E731
    timed, record = bench.timed(run, [probe], steps=shape.steps, steps_run=steps_run)
    probe.close()
    plan = MemoryPlan.from_dict(record.memory_plan)
    return {**timed.to_dict(), "plan": plan.describe(), "plan_fits": plan.fits, "est_vram_gb": plan.est_vram_gb,
            "step_downs": [s.to_dict() for s in record.step_downs]}
