# One image for the four services: `python -m booking_svc` (or discount_svc, notification_svc, gateway).
FROM python:3.11.7-slim
WORKDIR /app
COPY pyproject.toml ./
COPY protos ./protos
RUN pip install --no-cache-dir grpcio-tools==1.85.1 \
 && mkdir -p gen/clinic/v1 && touch gen/clinic/__init__.py gen/clinic/v1/__init__.py \
 && python -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen protos/clinic/v1/*.proto
COPY clinic_common ./clinic_common
COPY booking_svc ./booking_svc
COPY discount_svc ./discount_svc
COPY notification_svc ./notification_svc
COPY gateway ./gateway
COPY clinic_cli ./clinic_cli
RUN pip install --no-cache-dir . && useradd --system clinic && mkdir /pki && chown clinic /pki
USER clinic
ENV CLINIC_LOG_FORMAT=json
CMD ["python", "-m", "gateway"]
