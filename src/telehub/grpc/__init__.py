"""The gRPC adapter: servicers over the core, for services and edge gateways.

Generated code lives in :mod:`telehub.v1`; nothing outside this package (and
the client) imports grpc.
"""
