# The nerve image for Ray clusters (configs/ray/kuberay-*.yaml): Ray's own GPU image at the Ray
# version this project is tested with, the torch pair .ci/run installs, and the project itself.
#   docker build -t registry.example.com/nerve:0.1.0 . && docker push registry.example.com/nerve:0.1.0
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/nerve

# torch and torchvision first: the pair that imports together (README, "Install"); a layer of its
# own, so that a change to the project does not download them again.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1

COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users nerve_core nerve_core
COPY --chown=ray:users pipeline pipeline
COPY --chown=ray:users jobs jobs
COPY --chown=ray:users configs configs

# The base image's Ray stays as it is (pinned here), so head, workers and submitter agree.
RUN pip install --no-cache-dir . "ray[default,tune]==2.60.0"

