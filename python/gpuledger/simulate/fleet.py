"""The simulated fleet: GPUs (UUID, index, host, model), where they are placed (namespace, pod,
container) and what one second of DCGM telemetry of a GPU holds.

Physical model per GPU-second, from the utilization `u` (GR_ENGINE_ACTIVE, 0..1) a scenario
chose:
- `DCGM_FI_DEV_GPU_UTIL` (percent): `min(100, round(100 * min(1, 1.15 * u)))` when `u > 0.005`,
  else 0 (coarse "any kernel running" reads higher than the engine-active ratio);
- power (W): `idle_w + (tdp_w - idle_w) * u`;
- energy counter (mJ, since boot): starts at a seeded offset, grows by `1000 * power` per second;
- framebuffer (MiB): what the scenario says the placement holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuModel:
    name: str  # DCGM modelName
    tdp_w: float
    idle_w: float
    memory_mib: int


H100 = GpuModel("NVIDIA H100 80GB HBM3", 700.0, 70.0, 81559)
A100 = GpuModel("NVIDIA A100-SXM4-80GB", 400.0, 55.0, 81920)
L40S = GpuModel("NVIDIA L40S", 350.0, 35.0, 46068)

GPUS_PER_HOST = 8


@dataclass(frozen=True)
class SimGpu:
    uuid: str
    index: int  # `gpu` label: index on its host
    host: str
    model: GpuModel
    pci_bus_id: str
    boot_energy_mj: int  # the energy counter's value at the simulation start


@dataclass(frozen=True)
class Placement:
    """Where a GPU is allocated; all empty when it is not allocated to a pod."""

    namespace: str
    pod: str
    container: str

    @property
    def allocated(self) -> bool:
        return bool(self.pod)


UNALLOCATED = Placement("", "", "")


def make_gpus(rng: random.Random, count: int, host_prefix: str, model: GpuModel) -> list[SimGpu]:
    """`count` GPUs on hosts of 8 (`<host_prefix>-00`, `-01`, ...), UUIDs drawn from `rng`."""
    out = []
    for i in range(count):
        h = rng.getrandbits(128)
        uuid = (
            f"GPU-{h >> 96:08x}-{(h >> 80) & 0xFFFF:04x}-{(h >> 64) & 0xFFFF:04x}-"
            f"{(h >> 48) & 0xFFFF:04x}-{h & 0xFFFFFFFFFFFF:012x}"
        )
        index = i % GPUS_PER_HOST
        out.append(
            SimGpu(
                uuid=uuid,
                index=index,
                host=f"{host_prefix}-{i // GPUS_PER_HOST:02d}",
                model=model,
                pci_bus_id=f"00000000:{0x18 + 0x10 * index:02X}:00.0",
                boot_energy_mj=rng.randrange(10**9, 10**12),
            )
        )
    return out


def gpu_util_percent(u: float) -> int:
    return 0 if u <= 0.005 else min(100, round(100.0 * min(1.0, 1.15 * u)))


def power_w(model: GpuModel, u: float) -> float:
    return model.idle_w + (model.tdp_w - model.idle_w) * u
