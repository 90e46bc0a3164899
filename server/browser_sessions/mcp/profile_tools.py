"""The profile tools: list, create and delete saved profiles (logins kept between sessions), one declaration
each, gathered in ``PROFILE_TOOLS``. A caller sees only its own profiles (its owner, http_boundary.py).

Export and import are CLI-only on purpose: an export holds live login cookies, which do not belong in a
model's context, and an import through a tool would read files on the server's machine for a remote caller.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from browser_sessions.mcp.app_state import app
from browser_sessions.mcp.http_boundary import request_owner
from browser_sessions.mcp.registry import ToolDeclaration
from browser_sessions.profiles import ProfileInfo, ProfileList, Profiles

ProfileName = Annotated[str, Field(max_length=200, description="A label for people (not unique); may be empty.")]
ExistingProfileId = Annotated[
    str, Field(min_length=1, max_length=128, description="The profile's id (profileId from list_profiles).")
]


def _profiles(ctx: Context[Any]) -> Profiles:
    return Profiles(app(ctx).settings.profiles_dir)


async def list_profiles(ctx: Context[Any]) -> ProfileList:
    """Your saved profiles: pass one's profileId to start_session or run_task to start logged in."""
    owner = request_owner()
    return ProfileList(profiles=await anyio.to_thread.run_sync(_profiles(ctx).list_all, owner))


async def create_profile(ctx: Context[Any], name: ProfileName = "") -> ProfileInfo:
    """Create an empty profile. Start a session with its profileId and log in; when the session ends, its
    cookies and storage are saved into the profile, and later sessions with that profileId start from them.
    One live session at a time uses a profile."""
    profiles, owner = _profiles(ctx), request_owner()
    return await anyio.to_thread.run_sync(lambda: profiles.create(name=name, owner=owner))


async def delete_profile(ctx: Context[Any], profileId: ExistingProfileId) -> ProfileInfo:
    """Delete a profile and its saved logins (refused while a live session uses it). Returns what was deleted."""
    profiles, owner = _profiles(ctx), request_owner()
    return await anyio.to_thread.run_sync(lambda: profiles.delete(profileId, owner))


PROFILE_TOOLS: list[ToolDeclaration] = [
    ToolDeclaration(list_profiles, "List saved profiles", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    ToolDeclaration(
        create_profile,
        "Create a profile",
        ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False),
    ),
    ToolDeclaration(
        delete_profile,
        "Delete a profile",
        ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False),
    ),
]
