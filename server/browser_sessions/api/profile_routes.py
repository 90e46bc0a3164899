"""The service's profile endpoints (reference/remote-api.md §16.1) on our profiles (profiles.py), and the same
handlers under ``/environments`` (§16.2: the same ids, the G4 names in the answers).

Each API key is one owner: a key sees, changes and downloads only its own profiles; another key's profile
is answered 404 exactly as an unknown id. At most ``MAX_PROFILES`` per owner.

The service hands out signed blob-store URLs for downloads; this server has no blob store, so
``GET /profiles/:id/download`` answers a link to ``GET /profiles/:id/archive?token=...`` on this server (a
signed token, valid 1 h, download_links.py), which sends the ``.tar.gz`` (profile_archive.py).
``POST /profiles/:id/upload`` takes such an archive back, into any profile of the key (refused while a live
session uses it: 409, code PROFILE_IN_USE, as deleting one is).

Profile objects: ``status`` is ``ready`` when the saved state holds cookies or storage, else ``empty``;
``blobSize`` is the saved state's size in bytes; ``blobUploadedAt`` when it was last saved (by a session
ending or an upload).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import anyio
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from browser_sessions.api.answers import (
    INVALID,
    MISSING,
    ApiError,
    Handler,
    base_url,
    guarded,
    json_object,
    owner,
    read_body,
)
from browser_sessions.api.download_links import DownloadLinks
from browser_sessions.api.profile_archive import MAX_UPLOAD_BYTES, NOT_GZIP, pack, unpack
from browser_sessions.errors import ProfileNotFound
from browser_sessions.profiles import ProfileInfo, Profiles
from browser_sessions.settings import Settings

ARCHIVE_PATH = re.compile(r"/profiles/[^/]+/archive")  # the one path a link's token opens, without an API key
MAX_PROFILES = 20
MAX_NAME = 100
MAX_DESCRIPTION = 500
_MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file


@dataclass(frozen=True)
class Kind:
    """The names one family of paths uses: ``Profile`` under /profiles, ``Environment`` under /environments."""

    noun: str
    path: str
    one: str


PROFILE = Kind("Profile", "profiles", "profile")
ENVIRONMENT = Kind("Environment", "environments", "environment")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _ready(info: ProfileInfo) -> bool:
    return bool(info.cookies or info.origins)


def profile_body(info: ProfileInfo, size: int) -> dict[str, Any]:
    """The documented profile object (§16.1) for ``info``, whose saved state is ``size`` bytes."""
    ready = _ready(info)
    return {
        "_id": info.profile_id,
        "userId": info.owner,
        "name": info.name,
        "description": info.description,
        "blobSize": size if ready else 0,
        "blobUploadedAt": _iso(info.updated_at) if ready else None,
        "lastUsedAt": _iso(info.last_used_at),
        "usageCount": info.usage_count,
        "status": "ready" if ready else "empty",
        "createdAt": _iso(info.created_at),
        "updatedAt": _iso(info.updated_at),
    }


class _Shared:
    """What both families share: the profiles, the download links, the lock that keeps the limit."""

    def __init__(self, settings: Settings) -> None:
        self.profiles = Profiles(settings.profiles_dir)
        self.links = DownloadLinks()
        self.creating = anyio.Lock()

    async def body(self, info: ProfileInfo) -> dict[str, Any]:
        return profile_body(info, await anyio.to_thread.run_sync(self.profiles.data_size, info.profile_id))


class _ProfileEndpoints:
    def __init__(self, shared: _Shared, kind: Kind) -> None:
        self.shared = shared
        self.profiles = shared.profiles
        self.kind = kind

    def _not_found(self) -> ApiError:
        return ApiError(404, f"{self.kind.noun} not found", ProfileNotFound.code)

    async def _get(self, request: Request) -> ProfileInfo:
        """The path's profile if the request's owner has it, else the documented 404."""
        try:
            return await anyio.to_thread.run_sync(self.profiles.get, request.path_params["profile_id"], owner(request))
        except ProfileNotFound:
            raise self._not_found() from None

    async def listing(self, request: Request) -> JSONResponse:
        found = await anyio.to_thread.run_sync(self.profiles.list_all, owner(request))
        newest_first = sorted(found, key=lambda info: (info.created_at, info.profile_id), reverse=True)
        return JSONResponse({"success": True, self.kind.path: [await self.shared.body(info) for info in newest_first]})

    async def create(self, request: Request) -> JSONResponse:
        body = await json_object(request)
        name, description = body.get("name"), body.get("description")
        noun = self.kind.noun
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, f"{noun} name is required", MISSING)
        if len(name) > MAX_NAME:
            raise ApiError(400, f"{noun} name must be at most {MAX_NAME} characters", INVALID)
        if description is not None and not isinstance(description, str):
            raise ApiError(400, f"{noun} description must be a string", INVALID)
        if len(description or "") > MAX_DESCRIPTION:
            raise ApiError(400, f"{noun} description must be at most {MAX_DESCRIPTION} characters", INVALID)
        who = owner(request)
        async with self.shared.creating:  # the count and the creation as one step, for this process
            held = await anyio.to_thread.run_sync(self.profiles.list_all, who)
            if len(held) >= MAX_PROFILES:
                raise ApiError(400, f"Maximum of {MAX_PROFILES} {self.kind.path} allowed", "PROFILE_LIMIT_REACHED")
            info = await anyio.to_thread.run_sync(
                lambda: self.profiles.create(name=name, owner=who, description=description or "")
            )
        answer = {"success": True, "message": f"{noun} created", self.kind.one: await self.shared.body(info)}
        return JSONResponse(answer)

    async def delete(self, request: Request) -> JSONResponse:
        info = await self._get(request)
        try:
            await anyio.to_thread.run_sync(self.profiles.delete, info.profile_id, info.owner)
        except ProfileNotFound:  # deleted meanwhile
            raise self._not_found() from None
        return JSONResponse({"success": True, "message": f"{self.kind.noun} deleted"})

    async def download(self, request: Request) -> JSONResponse:
        info = await self._get(request)
        if not _ready(info):
            raise ApiError(400, f"{self.kind.noun} has no data to download", "PROFILE_EMPTY")
        token = self.shared.links.issue(info.profile_id, info.owner)
        url = f"{base_url(request)}/profiles/{quote(info.profile_id)}/archive?token={token}"
        return JSONResponse({"success": True, "downloadUrl": url})

    async def archive(self, request: Request) -> Response:
        """The archive behind a download link; needs the link's token, not an API key."""
        profile_id = request.path_params["profile_id"]
        refused = ApiError(
            403, f"The download link is invalid or expired; ask GET /{self.kind.path}/:id/download for a new one."
        )
        try:
            info, document = await anyio.to_thread.run_sync(self.profiles.export_document, profile_id)
        except ProfileNotFound:
            raise refused from None
        if not self.shared.links.valid(request.query_params.get("token", ""), info.profile_id, info.owner):
            raise refused
        if not _ready(info):
            raise ApiError(400, f"{self.kind.noun} has no data to download", "PROFILE_EMPTY")
        data = await anyio.to_thread.run_sync(pack, document)
        headers = {
            "Content-Disposition": f'attachment; filename="profile-{info.profile_id}.tar.gz"',
            "Cache-Control": "no-store",
        }
        return Response(data, media_type="application/gzip", headers=headers)

    async def upload(self, request: Request) -> JSONResponse:
        info = await self._get(request)
        archive = await _uploaded_file(request)
        document = await anyio.to_thread.run_sync(unpack, archive)
        try:
            saved = await anyio.to_thread.run_sync(
                lambda: self.profiles.replace_from(info.profile_id, document, "The uploaded archive", info.owner)
            )
        except ProfileNotFound:
            raise self._not_found() from None
        return JSONResponse(
            {"success": True, "message": "Profile uploaded successfully", self.kind.one: await self.shared.body(saved)}
        )


async def _uploaded_file(request: Request) -> bytes:
    """The bytes of the multipart field ``file`` (a ``.tar.gz``/``.tgz`` by name); 400 when there is none."""
    no_file = ApiError(400, "No file provided: send the .tar.gz as the multipart/form-data field 'file'.", MISSING)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise no_file
    body = await read_body(request, MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD, "The upload")

    async def chunks() -> Any:
        yield body

    parser = MultiPartParser(request.headers, chunks(), max_files=1, max_fields=10, max_part_size=_MULTIPART_OVERHEAD)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"The upload is not valid multipart/form-data ({exc.message}).", INVALID) from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise no_file
        if not (file.filename or "").lower().endswith((".tar.gz", ".tgz")):
            raise ApiError(400, NOT_GZIP, INVALID)
        data = await file.read()
    finally:
        await form.close()
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.", INVALID)
    return data


def profile_routes(settings: Settings) -> list[Route]:
    shared = _Shared(settings)
    routes: list[Route] = []
    for kind in (PROFILE, ENVIRONMENT):
        api = _ProfileEndpoints(shared, kind)
        one = f"/{kind.path}/{{profile_id}}"
        handlers: list[tuple[str, Handler, str]] = [
            (f"/{kind.path}", api.listing, "GET"),
            (f"/{kind.path}", api.create, "POST"),
            (one, api.delete, "DELETE"),
            (f"{one}/download", api.download, "GET"),
            (f"{one}/upload", api.upload, "POST"),
        ]
        if kind is PROFILE:  # download links point here for both families
            handlers.append((f"{one}/archive", api.archive, "GET"))
        routes += [Route(path, guarded(handler), methods=[method]) for path, handler, method in handlers]
    return routes
