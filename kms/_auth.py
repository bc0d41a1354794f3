"""Authentication for the gRPC services: a server interceptor that derives the caller's identity
from its mutual-TLS client certificate and refuses admin calls without one.

Identity: the first URI subjectAltName of the verified client certificate (e.g.
``spiffe://example.org/owner/alice``), else its subject common name.  gRPC has already verified
the certificate chain against ``tls.client_ca`` during the handshake; this module only reads it.

Method classes:
* ``/weightseal.v1.KeyRelease/*``, gRPC health and reflection: identity optional (TEEs call
  without a client certificate);
* ``/weightseal.v1.ModelAdmin/*``, ``/weightseal.v1.Audit/*``: identity required, otherwise
  UNAUTHENTICATED with ``weightseal-reason: auth.unauthenticated``.
The identity and peer address travel to the handler in a ``contextvars.ContextVar``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from ._release import CallerInfo

__all__ = ["AuthInterceptor", "current_caller", "identity_from_context", "REASON_KEY"]

REASON_KEY = "weightseal-reason"
_PROTECTED = ("/weightseal.v1.ModelAdmin/", "/weightseal.v1.Audit/")
_caller: contextvars.ContextVar[CallerInfo | None] = contextvars.ContextVar("weightseal_caller", default=None)


def current_caller() -> CallerInfo:
    c = _caller.get()
    return c if c is not None else CallerInfo(identity=None, address="unknown")


def identity_from_context(context: grpc.ServicerContext) -> str | None:
    """SAN URI, else CN, of the verified client certificate; None without one."""
    try:
        auth = context.auth_context()
    except Exception:  # noqa: BLE001 - no transport security info
        return None
    pems = auth.get("x509_pem_cert") or []
    if pems:
        try:
            cert = x509.load_pem_x509_certificate(pems[0])
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                uris = san.get_values_for_type(x509.UniformResourceIdentifier)
                if uris:
                    return str(uris[0])
            except x509.ExtensionNotFound:
                pass
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if cns:
                return str(cns[0].value)
        except ValueError:
            return None
    cn = auth.get("x509_common_name") or []
    return cn[0].decode("utf-8", "replace") if cn else None


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method)
        protected = method.startswith(_PROTECTED)
        inner = handler.unary_unary

        def behavior(request: Any, context: grpc.ServicerContext) -> Any:
            ident = identity_from_context(context)
            if protected and not ident:
                context.set_trailing_metadata(((REASON_KEY, "auth.unauthenticated"),))
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "auth.unauthenticated: the admin API needs a client certificate (mutual TLS)")
            token = _caller.set(CallerInfo(identity=ident, address=context.peer()))
            try:
                return inner(request, context)
            finally:
                _caller.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
