"""WIP smoke check for the Dask cluster bootstrap (issue 6): run `cluster_smoke.py algo-2` then `algo-1` with
TRAIN_HOST_ADDRESSES='{"algo-1": "127.0.0.1", "algo-2": "127.0.0.2"}'; each prints its host's SAGEMAKER_BASE_DIR as seen by a pinned task."""
import os, sys, logging, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "container"))
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
from byoa.distributed.cluster import Cluster, ClusterSpec
me = sys.argv[1]
spec = ClusterSpec.from_env(["algo-1", "algo-2"], me)
c = Cluster(spec)
if spec.is_leader:
    try:
        c.start_leader()
        workers = c.worker_names()
        def where():
            import os; return os.environ.get("SAGEMAKER_BASE_DIR")
        res = {h: c.client.submit(where, workers=[a], pure=False).result() for h, a in workers.items()}
        print("RESULT", res, flush=True)
    finally:
        c.shutdown()
else:
    sys.exit(c.follow())
