"""Ray for `--ray [ADDRESS]`: a local Ray that listens on loopback only, or a given cluster.

A local Ray (`--ray` without an address) starts a GCS server, a raylet with its object
manager, worker processes and two agents, each with TCP listeners. Ray binds them to every
interface unless the node's IP address is loopback, and `ray.init` replaces a loopback
`_node_ip_address` with the machine's routable address unless Ray's single-machine mode is on
(`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, which `ray._private.ray_constants` reads when Ray is
first imported). `init_ray` sets both, keeps the dashboard off (and on 127.0.0.1 if a caller
turns it on), and checks the node address it got, so a local run never listens beyond
127.0.0.1 / ::1 (test_faults_security.py lists the sockets). With an ADDRESS it joins that
cluster as it is: securing a cluster is its operator's job (README, Security).
"""

import os
from typing import Any

LOCAL = (None, '', 'local')  # what `--ray` without an address passes
LOOPBACK = ('127.0.0.1', '::1')
SINGLE_MACHINE_ENV = 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'  # '0': the node address is loopback


def init_ray(address: str | None = None, **options: Any) -> None:
    """`ray.init` for `--ray [ADDRESS]`; `options` go to ray.init (num_cpus, log_to_driver).

    No address (or 'local'): start a new Ray on this machine, every listener on loopback.
    """
    if address not in LOCAL:
        import ray

        ray.init(address=address, **options)
        return
    os.environ[SINGLE_MACHINE_ENV] = '0'  # read at `import ray`; Ray's processes inherit it
    import ray

    try:  # Ray was imported before the variable was set: the switch it was read into
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):
        pass  # another Ray layout: the check below still refuses a non-loopback node
    ray.init(**{'include_dashboard': False, **options, 'address': 'local',
                '_node_ip_address': LOOPBACK[0], 'dashboard_host': LOOPBACK[0]})
    node_ip = ray.util.get_node_ip_address()
    if node_ip not in LOOPBACK:
        ray.shutdown()
        raise RuntimeError(f'local Ray came up on {node_ip}, not loopback: its servers would '
                           f'listen on every interface (this Ray version ignores '
                           f'{SINGLE_MACHINE_ENV}=0)')
