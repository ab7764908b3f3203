# Triton with the Argus model repository's Python requirements (the NGC image's Python
# has no onnxruntime or OpenCV). The same triton_models/requirements.txt describes the
# embedded Triton environment; on the GPU the CUDA build of onnxruntime replaces it.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.08-py3
FROM ${TRITON_IMAGE}
COPY triton_models/requirements.txt /tmp/requirements.txt
RUN sed 's/^onnxruntime==/onnxruntime-gpu==/' /tmp/requirements.txt > /tmp/req-gpu.txt \
    && pip install --no-cache-dir -r /tmp/req-gpu.txt
