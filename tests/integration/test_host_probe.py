"""The host probe on this machine: node_exporter's names, values checked
against /proc and statvfs read by the test itself, pseudo filesystems left
out, the host name as instance, and promtool's verdict on the output."""

import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, main, run, start_usherd, tool  # noqa: E402

CONFIG = """\
global:
  scrape_interval: 1s
probes:
  - name: node
    type: host
    timeout: 900ms
"""

PSEUDO = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "mqueue", "overlay",
          "securityfs", "debugfs", "tracefs", "bpf", "configfs", "autofs", "nsfs", "fusectl"}


def proc_stat():
    cpus, btime = {}, None
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0] != "cpu":
            cpus[f[0][3:]] = [int(x) for x in f[1:]]
        elif f and f[0] == "btime":
            btime = int(f[1])
    return cpus, btime


def net_dev():
    devs = {}
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, rest = line.split(":", 1)
        devs[name.strip()] = [int(x) for x in rest.split()]
    return devs


def setup(h):
    hz = os.sysconf("SC_CLK_TCK")
    before = {"stat": proc_stat(), "net": net_dev(), "time": time.time()}
    u = start_usherd(h, CONFIG)
    m = u.wait_runs(["node"], runs=2)
    after = {"stat": proc_stat(), "net": net_dev(), "time": time.time()}
    return {"u": u, "m": m, "hz": hz, "before": before, "after": after}


def check_success_and_instance(h, ctx):
    m = ctx["m"]
    expect(m.value("probe_success", job="node") == 1,
           f"probe_success{{job=node}}: {m.find('probe_success', job='node')}")
    inst = socket.gethostname()
    up = m.find("node_load1", job="node")
    expect(len(up) == 1 and up[0].labels.get("instance") == inst,
           f"instance should be the host name {inst!r}: {up}")
    bad = [s for s in m.find("node_scrape_collector_success", job="node") if s.value != 1]
    expect(not bad, f"collectors failing: {bad}")


def check_cpu(h, ctx):
    m, hz = ctx["m"], ctx["hz"]
    cpus0, _ = ctx["before"]["stat"]
    cpus1, _ = ctx["after"]["stat"]
    modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    got = {s.labels["cpu"] for s in m.find("node_cpu_seconds_total", job="node")}
    expect(got == set(cpus1), f"cpu labels {sorted(got)}, /proc/stat has {sorted(cpus1)}")
    for cpu in cpus1:
        for i, mode in enumerate(modes):
            v = m.value("node_cpu_seconds_total", job="node", cpu=cpu, mode=mode)
            lo, hi = cpus0[cpu][i] / hz, cpus1[cpu][i] / hz
            expect(v is not None and lo - 1e-9 <= v <= hi + 1e-9,
                   f"node_cpu_seconds_total{{cpu={cpu},mode={mode}}} = {v}, /proc/stat said "
                   f"{lo} before and {hi} after")
    expect(m.types.get("node_cpu_seconds_total") == "counter", "node_cpu_seconds_total type")


def check_memory_load_time(h, ctx):
    m = ctx["m"]
    mem = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, rest = line.split(":", 1)
        mem[name] = int(rest.split()[0])
    for field in ("MemTotal", "SwapTotal"):
        v = m.value(f"node_memory_{field}_bytes", job="node")
        expect(v == mem[field] * 1024, f"node_memory_{field}_bytes = {v}, /proc/meminfo "
                                       f"says {mem[field] * 1024}")
    for field in ("MemAvailable", "MemFree", "Buffers", "Cached", "SwapFree"):
        v = m.value(f"node_memory_{field}_bytes", job="node")
        expect(v is not None and 0 <= v <= mem["MemTotal"] * 1024 + mem["SwapTotal"] * 1024,
               f"node_memory_{field}_bytes = {v}")
    expect(m.helps.get("node_memory_MemTotal_bytes") ==
           "Memory information field MemTotal_bytes.", "node_exporter's help text")
    _, btime = ctx["after"]["stat"]
    expect(m.value("node_boot_time_seconds", job="node") == btime,
           f"node_boot_time_seconds = {m.value('node_boot_time_seconds', job='node')}, "
           f"btime {btime}")
    for n in ("node_load1", "node_load5", "node_load15"):
        v = m.value(n, job="node")
        expect(v is not None and v >= 0, f"{n} = {v}")
    t = m.value("node_time_seconds", job="node")
    expect(t is not None and ctx["before"]["time"] - 1 <= t <= ctx["after"]["time"] + 1,
           f"node_time_seconds = {t}")


def check_filesystems(h, ctx):
    m = ctx["m"]
    sizes = m.find("node_filesystem_size_bytes", job="node")
    expect(sizes, "no node_filesystem_size_bytes at all")
    fstypes = {s.labels["fstype"] for s in sizes}
    expect(not (fstypes & PSEUDO), f"pseudo filesystems reported: {fstypes & PSEUDO}")
    mps = [s.labels["mountpoint"] for s in sizes]
    expect(len(mps) == len(set(mps)), f"a mount point reported twice: {sorted(mps)}")
    for mp in mps:
        expect(not any(mp == p or mp.startswith(p + "/") for p in ("/proc", "/sys", "/dev")),
               f"excluded mount point {mp} reported")
    root = [s for s in sizes if s.labels["mountpoint"] == "/"]
    expect(root, f"/ not among the filesystems: {mps}")
    st = os.statvfs("/")
    want = st.f_blocks * st.f_frsize
    expect(root[0].value == want, f"size of / = {root[0].value}, statvfs says {want}")
    labels = root[0].labels
    for fam in ("node_filesystem_avail_bytes", "node_filesystem_free_bytes",
                "node_filesystem_files", "node_filesystem_files_free",
                "node_filesystem_readonly", "node_filesystem_device_error"):
        expect(m.find(fam, job="node", mountpoint="/", device=labels["device"],
                      fstype=labels["fstype"]), f"{fam} missing for /")
    avail = m.value("node_filesystem_avail_bytes", job="node", mountpoint="/")
    expect(0 <= avail <= want, f"avail of / = {avail}")
    expect(m.value("node_filesystem_files", job="node", mountpoint="/") == st.f_files,
           "node_filesystem_files of / differs from statvfs")
    expect(m.value("node_filesystem_device_error", job="node", mountpoint="/") == 0,
           "device_error of /")


def check_network_and_disks(h, ctx):
    m = ctx["m"]
    n0, n1 = ctx["before"]["net"], ctx["after"]["net"]
    got = {s.labels["device"] for s in m.find("node_network_receive_bytes_total", job="node")}
    expect(got == set(n1), f"network devices {sorted(got)}, /proc/net/dev has {sorted(n1)}")
    for dev in n1:
        for fam, idx in (("receive_bytes", 0), ("transmit_bytes", 8), ("receive_errs", 2),
                         ("receive_drop", 3), ("transmit_errs", 10), ("transmit_drop", 11)):
            v = m.value(f"node_network_{fam}_total", job="node", device=dev)
            expect(v is not None and n0.get(dev, n1[dev])[idx] <= v <= n1[dev][idx],
                   f"node_network_{fam}_total{{device={dev}}} = {v}, /proc/net/dev said "
                   f"{n0.get(dev, [None] * 16)[idx]} before, {n1[dev][idx]} after")
    disks = {}
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        disks[f[2]] = [int(x) for x in f[3:]]
    got = {s.labels["device"] for s in m.find("node_disk_read_bytes_total", job="node")}
    expect(got <= set(disks), f"disk devices {got} not in /proc/diskstats")
    expect(not any(d.startswith(("loop", "ram", "zram")) for d in got),
           f"loop/ram devices should be filtered: {got}")
    for dev in got:
        v = m.value("node_disk_read_bytes_total", job="node", device=dev)
        expect(v <= disks[dev][2] * 512, f"node_disk_read_bytes_total{{device={dev}}} = {v} "
                                         f"> what /proc/diskstats says now")
        expect(m.find("node_disk_written_bytes_total", job="node", device=dev) and
               m.find("node_disk_io_time_seconds_total", job="node", device=dev),
               f"written bytes / io time missing for {dev}")


def check_promtool(h, ctx):
    # node_exporter's own meminfo names (MemTotal_bytes) are camelCase, which
    # promtool's linter flags for node_exporter too; nothing else may be flagged.
    promtool = tool("promtool")
    body = ctx["u"].get("/metrics").body
    r = run([promtool, "check", "metrics"], input_bytes=body)
    out = (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()
    other = [l for l in out if not (l.startswith("node_memory_") and "camelCase" in l)]
    expect(r.returncode in (0, 3) and not other,
           f"promtool check metrics exited {r.returncode}:\n" + "\n".join(other[:20]))


if __name__ == "__main__":
    main("host_probe", setup, [
        check_success_and_instance, check_cpu, check_memory_load_time, check_filesystems,
        check_network_and_disks, check_promtool,
    ])
