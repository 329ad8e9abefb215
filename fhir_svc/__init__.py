"""fhir_svc: the FHIR R4 facade at /fhir/R4, over the public gRPC API with the caller's identity."""
