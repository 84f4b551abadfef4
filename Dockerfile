# rlframe's SageMaker image: `docker run <image> train` runs a SageMaker RL source folder mounted at /opt/ml/code
# (or a shipped preset named by RLCOACH_PRESET); `docker run <image> serve` serves the model in /opt/ml/model on
# port 8080 (or SAGEMAKER_BIND_TO_PORT), for endpoints and batch transform. Build with `docker build -t rlframe .`,
# or without a Docker daemon with ../shared/container/build.sh (buildah), which passes a local Debian 12 base image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The pinned dependencies, the sagemaker extra (boto3, to fetch an estimator's source_dir from S3), the serve
# extra (onnxruntime, uvicorn) and the distributed extra (Ray, for num_workers > 1), read from setup.cfg in a
# stage of their own: the image's dependency layer is then keyed by this list alone, so neither a code change
# nor a new console script in setup.cfg reinstalls them.
FROM ${BASE_IMAGE} AS requirements
COPY setup.cfg /tmp/setup.cfg
RUN python3 -c "import configparser; c = configparser.ConfigParser(interpolation=None); c.read('/tmp/setup.cfg'); \
print(c['options']['install_requires'].strip()); print(c['options.extras_require']['sagemaker'].strip()); \
print(c['options.extras_require']['serve'].strip()); print(c['options.extras_require']['distributed'].strip())" \
> /tmp/requirements.txt

FROM ${BASE_IMAGE}

# MXNet 1.9.1's pip wheel links against these; neither slim Debian nor python:3.11-slim carries them, and
# without them `import mxnet` fails with an OSError.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 libquadmath0 \
    && rm -rf /var/lib/apt/lists/*

# Debian's python3 refuses system-wide pip installs, so everything lives in a virtual environment.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    COACH_BACKEND=mxnet

COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# Then the project itself, as a regular (non-editable) install into the virtual environment.
COPY . /usr/src/rlframe
RUN pip install --use-pep517 /usr/src/rlframe && rm -rf /usr/src/rlframe/build /usr/src/rlframe/*.egg-info

# SageMaker mounts /opt/ml over whatever the image holds there, so nothing is placed under it. The working
# directory is an empty folder of its own: a folder holding the source tree would shadow the installed package
# for `python -m`.
WORKDIR /opt/program
# For serving (the `serve` argument, which arrives with its own issue): SageMaker may choose the port and pass
# it in SAGEMAKER_BIND_TO_PORT; 8080 otherwise.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
# Exec form: the entrypoint is PID 1 and receives SageMaker's SIGTERM itself.
ENTRYPOINT ["rlframe-sagemaker"]
