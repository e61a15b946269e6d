#!/usr/bin/env python3
"""loadgen as a Kubeflow Pipelines (v2) pipeline: one component runs `loadgen run`.

    python deploy/kubeflow/pipeline.py --compile deploy/kubeflow/pipeline.yaml
    python deploy/kubeflow/pipeline.py --local [--arg NAME=VALUE ...] [--pipeline-root DIR]

--compile writes the pipeline spec to upload to Kubeflow; --local runs it here with
kfp's local SubprocessRunner (no cluster, no container: the component runs in this
Python, the binary from $LOADGEN_BIN or `loadgen` on PATH) and prints the task's
outputs as one JSON line. Needs kfp (deploy/kubeflow/requirements.txt; scripts/
setup_checks.sh kfp installs it into .venv-kfp).

The parameters are the Intel Model Zoo launch_benchmark's (as its Kubeflow seed
pipeline exposes them), then loadgen's own. How each becomes a loadgen flag:

  data_location          --dataset-path (empty: synthetic inputs, no accuracy pass)
  model_name             --model-name, with backend kserve (the server's model name);
                         other backends take the model from their profile (give
                         --profile or --model in extra_model_args)
  precision              --precision fp32|int8|bf16 (empty: the runtime's default)
  mode                   no loadgen meaning: throughput, latency or accuracy is
                         checked and kept in the metrics; `loadgen run` answers the
                         throughput a latency target allows, which is both
  batch_size             --batch_size (0: the scenario's)
  socket_id              --socket-id (-1: no NUMA binding)
  verbose                --verbose
  benchmark_or_accuracy  benchmark: --no-accuracy; accuracy: the accuracy pass runs
                         first (it needs data_location)
  extra_model_args       appended as loadgen flags, split as a shell would
  docker_image           the component's container image (set_container_image;
                         loadgen:cpu is Dockerfile.cpu's); not used by --local

  targets        --max-latency (seconds, comma separated)
  distributions  --distributions
  backend        --backend
  url            --url (empty: not passed)
  agents         --agents HOST:PORT,... (empty: not passed; one process)
  time           --time (seconds per step; 0: the scenario's)
"""

import argparse
import json
import os
import sys
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Artifact, Metrics, Output

DEFAULT_IMAGE = "loadgen:cpu"
# The pipeline's outputs: the task's, so that a run (and the local runner) shows them.
PipelineOutputs = NamedTuple("PipelineOutputs", results=Artifact, metrics=Metrics)


@dsl.component(base_image=DEFAULT_IMAGE)
def loadgen_run(
    results: Output[Artifact],
    metrics: Output[Metrics],
    data_location: str = "",
    model_name: str = "",
    precision: str = "",
    mode: str = "throughput",
    batch_size: int = 0,
    socket_id: int = -1,
    verbose: bool = False,
    benchmark_or_accuracy: str = "benchmark",
    extra_model_args: str = "",
    targets: str = "0.05,0.1",
    distributions: str = "linear,exponential",
    backend: str = "onnxruntime",
    url: str = "",
    agents: str = "",
    time: float = 0.0,
):
    """Runs `loadgen run`; results.json to `results`, each FINAL_RESULT answer to `metrics`."""
    import ast
    import os
    import shlex
    import shutil
    import subprocess
    import tempfile

    if mode not in ("throughput", "latency", "accuracy"):
        raise ValueError(f"mode must be throughput, latency or accuracy; got {mode!r}")
    if benchmark_or_accuracy not in ("benchmark", "accuracy"):
        raise ValueError(f"benchmark_or_accuracy must be benchmark or accuracy; got {benchmark_or_accuracy!r}")
    binary = os.environ.get("LOADGEN_BIN") or shutil.which("loadgen") or "loadgen"
    # The run writes into a directory of its own, removed once its file is the artifact.
    with tempfile.TemporaryDirectory(prefix="loadgen-") as out_dir:
        out = os.path.join(out_dir, "results.json")
        cmd = [binary, "run", "--quiet", "--output", out, "--backend", backend,
               "--max-latency", targets, "--distributions", distributions]
        if data_location:
            cmd += ["--dataset-path", data_location]
        if model_name and backend in ("kserve", "triton"):
            cmd += ["--model-name", model_name]
        if precision:
            cmd += ["--precision", precision]
        if batch_size > 0:
            cmd += ["--batch_size", str(batch_size)]
        if socket_id >= 0:
            cmd += ["--socket-id", str(socket_id)]
        if verbose:
            cmd.append("--verbose")
        if benchmark_or_accuracy == "benchmark":
            cmd.append("--no-accuracy")
        if url:
            cmd += ["--url", url]
        if agents:
            cmd += ["--agents", agents]
        if time > 0:
            cmd += ["--time", repr(time)]
        cmd += shlex.split(extra_model_args)
        print("loadgen_run: " + shlex.join(cmd), flush=True)
        final = None
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
            for line in p.stdout:
                print(line, end="", flush=True)
                if line.startswith("===FINAL_RESULT: "):
                    final = ast.literal_eval(line[len("===FINAL_RESULT: "):].strip())
        if p.returncode != 0:
            raise RuntimeError(f"loadgen exited {p.returncode}")
        if final is None:
            raise RuntimeError("loadgen printed no ===FINAL_RESULT line")
        shutil.copyfile(out, results.path)
    results.metadata["mode"] = mode
    for dist, answers in final.items():
        for target, qps in answers.items():
            metrics.log_metric(f"{dist}_{target}", qps)


@dsl.pipeline(
    name="loadgen",
    description="The highest rate whose p99 meets each target latency (loadgen run).",
)
def loadgen_pipeline(
    data_location: str = "",
    model_name: str = "resnet50",
    precision: str = "",
    mode: str = "throughput",
    batch_size: int = 0,
    socket_id: int = -1,
    verbose: bool = False,
    benchmark_or_accuracy: str = "benchmark",
    extra_model_args: str = "",
    docker_image: str = DEFAULT_IMAGE,
    targets: str = "0.05,0.1",
    distributions: str = "linear,exponential",
    backend: str = "onnxruntime",
    url: str = "",
    agents: str = "",
    time: float = 0.0,
) -> PipelineOutputs:
    task = loadgen_run(
        data_location=data_location,
        model_name=model_name,
        precision=precision,
        mode=mode,
        batch_size=batch_size,
        socket_id=socket_id,
        verbose=verbose,
        benchmark_or_accuracy=benchmark_or_accuracy,
        extra_model_args=extra_model_args,
        targets=targets,
        distributions=distributions,
        backend=backend,
        url=url,
        agents=agents,
        time=time,
    )
    task.set_container_image(docker_image)
    task.set_caching_options(False)
    return PipelineOutputs(results=task.outputs["results"], metrics=task.outputs["metrics"])


def run_local(arguments, pipeline_root):
    """Runs the pipeline with kfp's local SubprocessRunner; returns the task's outputs."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root)
    run = loadgen_pipeline(**arguments)
    out = {"state": "SUCCEEDED"}  # a failed task raises before this
    for name, artifact in run.outputs.items():
        out[name] = {"path": artifact.path, "metadata": artifact.metadata}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--compile", metavar="FILE.yaml", help="write the pipeline spec")
    group.add_argument("--local", action="store_true", help="run it with kfp's local runner")
    ap.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline parameter for --local (repeatable)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--pipeline-root", default=os.path.join(here, "local_outputs"), metavar="DIR",
                    help="where --local puts the outputs (default: deploy/kubeflow/local_outputs)")
    args = ap.parse_args()
    if args.compile:
        compiler.Compiler().compile(loadgen_pipeline, package_path=args.compile)
        return 0
    arguments = {}
    types = {name: type(p.default) for name, p in _parameters().items()}
    for kv in args.arg:
        name, sep, value = kv.partition("=")
        if not sep or name not in types:
            ap.error(f"--arg takes NAME=VALUE with NAME one of {', '.join(types)}; got {kv!r}")
        kind = types[name]
        arguments[name] = value.lower() in ("1", "true") if kind is bool else kind(value)
    print(json.dumps(run_local(arguments, args.pipeline_root)))
    return 0


def _parameters():
    import inspect

    return inspect.signature(loadgen_pipeline.pipeline_func).parameters


if __name__ == "__main__":
    sys.exit(main())
