# One image for every service: `python -m <service>` (the rows of clinic_common/services.py).
FROM python:3.11.7-slim
WORKDIR /app
COPY pyproject.toml ./
COPY protos ./protos
RUN pip install --no-cache-dir grpcio-tools==1.85.1 googleapis-common-protos==1.76.0 \
 && mkdir -p gen/clinic/v1 && touch gen/clinic/__init__.py gen/clinic/v1/__init__.py \
 && python -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen protos/clinic/v1/*.proto \
 && GOOGLE="$(python -c 'import pathlib; from google.rpc import status_pb2 as m; print(pathlib.Path(m.__file__).parents[2])')" \
 && python -m grpc_tools.protoc -I protos -I "$GOOGLE" --include_imports --include_source_info \
      --descriptor_set_out=gen/clinic_descriptors.pb $(ls protos/clinic/v1/*.proto | grep -v saga.proto) \
      google/rpc/error_details.proto google/rpc/status.proto
# The whole tree (.dockerignore keeps out the virtualenv, data, generated code, web builds, tests);
# pyproject.toml's packages.find picks every service package, so a new one needs no line here.
COPY . ./
RUN pip install --no-cache-dir . && useradd --system clinic && mkdir /pki && chown clinic /pki
USER clinic
ENV CLINIC_LOG_FORMAT=json
CMD ["python", "-m", "gateway"]
