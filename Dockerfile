# Images of hearby's Python services, one target per deployable (the k8s object, the folder
# and the image share its name):
#
#   docker build --target ranker -t hearby/ranker:0.1.0 .
#   (control, vectorstore, ranker, catalog, feedback, ingest, dashboard)
#
# The embedder is NVIDIA's Triton image plus torch: services/embedder/Dockerfile.
#
# Every target shares the `base` stage, which installs the project exactly as `make setup`
# does (tests/unit/k8s/test_dockerfile.py fails when the two drift): torch first, by exact
# version; then the project with requirements.lock as constraints; then torchaudio alone with
# --no-deps, and on a CPU-only torch its CUDA-built extension libraries removed.
#
# CPU/CUDA torch split: the services never run a model on a GPU (the embedder does), so the
# default build takes the CPU wheel from PyTorch's CPU index (no CUDA libraries, ~2 GB
# smaller). A CUDA build, e.g. for running the trainer in a cluster, passes
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# (or https://pypi.org/simple, whose Linux wheels are CUDA builds); torchaudio's extension
# libraries are then kept.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# OPENBLAS_NUM_THREADS=1: the services' matrix products are small (the ranker's 50 x 256
# re-ranking); a second OpenBLAS thread only spins, and cost the ranker 4-7x its CPU per
# call in the load test (docs/BENCHMARKS.md).
ENV VIRTUAL_ENV=/opt/venv \
    OPENBLAS_NUM_THREADS=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
RUN python -m venv /opt/venv && useradd --uid 10001 --user-group --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin hearby
WORKDIR /opt/hearby

# torch first, by exact version (the pin in pyproject.toml), so the resolver never swaps it.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# The project, with the whole resolved set pinned by requirements.lock (as constraints).
# Editable, as `make setup` installs it, so what runs is this source tree (a wheel would
# leave out dashboard/views, the page scripts, which is no package); no dev extra (pytest, ruff).
COPY pyproject.toml requirements.lock README.md ./
COPY hearby ./hearby
COPY services ./services
COPY trainer ./trainer
COPY dashboard ./dashboard
RUN pip install -c requirements.lock -e .

# torchaudio pins an older torch: install it alone. On a CPU-only torch its CUDA-built
# extension libraries fail to load; without them the pure-Python transforms work.
RUN pip install --no-deps torchaudio==2.11.0 \
    && if [ "$(python -c 'import torch; print(torch.version.cuda is None)')" = True ]; then \
         rm -f /opt/venv/lib/python3.11/site-packages/torchaudio/lib/*.so; fi \
    && python -c "import torchaudio, tritonclient.grpc, pymilvus, redis, soundfile, pedalboard, streamlit"

# Unprivileged, numeric (so runAsNonRoot can verify it); the root filesystem is mounted
# read-only in the cluster, with an emptyDir on /tmp (HOME).
USER 10001:10001

FROM base AS control
EXPOSE 50051 9090
CMD ["python", "-m", "services.control"]

FROM base AS vectorstore
EXPOSE 50052 9090
CMD ["python", "-m", "services.vectorstore"]

FROM base AS ranker
EXPOSE 50053 9090
CMD ["python", "-m", "services.ranker"]

FROM base AS catalog
EXPOSE 50054 9090
CMD ["python", "-m", "services.catalog"]

FROM base AS feedback
EXPOSE 50055 9090
CMD ["python", "-m", "services.feedback"]

FROM base AS ingest
CMD ["python", "-m", "services.ingest"]

FROM base AS dashboard
EXPOSE 8501
CMD ["python", "-m", "dashboard"]
