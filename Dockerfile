# rlframe's SageMaker training image: `docker run <image> train` runs a SageMaker RL source folder mounted at
# /opt/ml/code (or a shipped preset named by RLCOACH_PRESET). Build with `docker build -t rlframe .`, or without
# a Docker daemon with ../shared/container/build.sh (buildah), which passes a local Debian 12 base image.
ARG BASE_IMAGE=python:3.11-slim-bookworm
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

# The pinned dependencies first, read from setup.cfg alone, so a change to the code reuses this (slow) layer.
COPY setup.cfg /usr/src/rlframe/setup.cfg
RUN python -c "import configparser, sys; c = configparser.ConfigParser(interpolation=None); \
c.read(sys.argv[1]); print(c['options']['install_requires'].strip())" /usr/src/rlframe/setup.cfg \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, as a regular (non-editable) install: the image does not need the source tree.
COPY . /usr/src/rlframe
RUN pip install --use-pep517 /usr/src/rlframe && rm -rf /usr/src/rlframe/build /usr/src/rlframe/*.egg-info

# SageMaker mounts /opt/ml over whatever the image holds there, so nothing is placed under it. The working
# directory is an empty folder of its own: a folder holding the source tree would shadow the installed package
# for `python -m`.
WORKDIR /opt/program
# Serving (the `serve` argument) listens on SAGEMAKER_BIND_TO_PORT when SageMaker sets it, else 8080.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
# Exec form: the entrypoint is PID 1 and receives SageMaker's SIGTERM itself.
ENTRYPOINT ["rlframe-sagemaker"]
