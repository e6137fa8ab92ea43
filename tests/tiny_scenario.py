"""A tiny quickstart-like scenario for the sweep tests (about a second per run).

Backprop as dynamics on a 5-7-3 teacher-student problem; ``run()`` returns metrics like the
quickstart's. ``fail_lr`` makes runs with that learning rate raise, to test failure handling; the environment
variable ``TINY_SCENARIO_HANG_LR`` makes runs with that learning rate hang, to test a killed sweep,
and ``TINY_SCENARIO_EXIT_LR`` makes them kill their process, to test a dying worker.
"""
import os
import time

import neurosim as ns
from neurosim.circuits import backprop

CONFIG = {
    "out": "tiny.h5",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "hidden": 7,
    "epochs": 2,
    "lr": 0.05,
    "fail_lr": -1.0,
}


def run(config: dict) -> dict:
    if config["lr"] == config["fail_lr"]:
        raise RuntimeError(f"lr={config['lr']} is the learning rate this test scenario refuses")
    if os.environ.get("TINY_SCENARIO_EXIT_LR") == str(config["lr"]):
        os._exit(3)  # the worker process dies
    if os.environ.get("TINY_SCENARIO_HANG_LR") == str(config["lr"]):
        time.sleep(120)  # stands for a long run, killed by the test
    t0 = time.perf_counter()
    data = ns.data.teacher_student([5, config["hidden"], 3], n_train=32, n_test=16, seed=config["seed"])
    circuit = backprop.build([5, config["hidden"], 3], seed=config["seed"])
    schedule = backprop.schedule(circuit, dt_ms=2.0, lr=config["lr"])
    sim = ns.Simulator(circuit, schedule, backend=config["backend"], dtype=config["dtype"], seed=config["seed"])
    with ns.Trace(config["out"]) as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=8, test=data.test, trace=trace,
                            monitors=[ns.StateMonitor("x1", "u", batch=[0]), ns.ConvergenceMonitor()],
                            scenario="tiny", config=config)
    print("done", config["lr"], config["seed"])
    from threadpoolctl import threadpool_info

    return {"test_loss": history["test_loss"][-1], "wall_s": time.perf_counter() - t0,
            "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),  # how the sweep pinned threads
            "blas_threads": max([p["num_threads"] for p in threadpool_info()], default=0)}


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
