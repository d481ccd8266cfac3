"""Memory: hardware profile, memory plans, OOM escalation — the only place that decides placement."""

from backend.errors import OutOfMemoryAfterAllPlans
from backend.memory.estimates import Workload
from backend.memory.hardware import HardwareProfile, detect_hardware
from backend.memory.manager import MemoryManager
from backend.memory.oom import free_memory, is_oom_error
from backend.memory.plans import MemoryPlan, apply_component_settings, apply_plan, choose_plan, fit_plan
from backend.memory.preflight import Preflight, StagePlan, motion_model, preflight

__all__ = [
    "HardwareProfile", "MemoryManager", "MemoryPlan", "OutOfMemoryAfterAllPlans", "Preflight", "StagePlan",
    "Workload", "apply_component_settings", "apply_plan", "choose_plan", "detect_hardware", "fit_plan",
    "free_memory", "is_oom_error", "motion_model", "preflight",
]
