"""``BlockingInstitutionClient``: the same calls for code that is not async (a Django or Flask
HIS back end). Each call runs the async client on a private event loop; use one instance per
thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from ecert.client.auth import PrivateKeyJwt
from ecert.client.institution import InstitutionClient

P = ParamSpec("P")
T = TypeVar("T")


class _Blocking(Generic[P, T]):
    """An async method of :class:`InstitutionClient`, called to completion."""

    def __init__(
        self, method: Callable[Concatenate[InstitutionClient, P], Coroutine[Any, Any, T]]
    ) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    def __get__(self, client: BlockingInstitutionClient, owner: type) -> Callable[P, T]:
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return client._runner.run(self._method(client._client, *args, **kwargs))

        return call


class BlockingInstitutionClient:
    def __init__(
        self,
        base_url: str,
        auth: PrivateKeyJwt,
        *,
        http: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        self._runner = asyncio.Runner()
        self._client = InstitutionClient(base_url, auth, http=http, **options)

    def __enter__(self) -> BlockingInstitutionClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    verify = _Blocking(InstitutionClient.verify)
    open_visit = _Blocking(InstitutionClient.open_visit)
    get_visit = _Blocking(InstitutionClient.get_visit)
    add_fees = _Blocking(InstitutionClient.add_fees)
    delete_fee = _Blocking(InstitutionClient.delete_fee)
    cancel_visit = _Blocking(InstitutionClient.cancel_visit)
    preview_visit = _Blocking(InstitutionClient.preview_visit)
    settle_visit = _Blocking(InstitutionClient.settle_visit)
    preview = _Blocking(InstitutionClient.preview)
    settle = _Blocking(InstitutionClient.settle)
    get_settlement = _Blocking(InstitutionClient.get_settlement)
    reverse = _Blocking(InstitutionClient.reverse)
    reconciliation = _Blocking(InstitutionClient.reconciliation)
    reconciliation_details = _Blocking(InstitutionClient.reconciliation_details)
    reconcile = _Blocking(InstitutionClient.reconcile)
