"""TikTok's official APIs: OAuth v2 tokens, the Display API and the Content Posting API.

Every call carries the account's OAuth access token, kept fresh by `activities.tokens` (refresh
before expiry, refresh once and redo on `access_token_invalid`, rotated refresh tokens stored).
The rooms:

- `errors`: how the API, the token endpoint and the upload URL say no (`classify*`);
- `client`: the provider declaration (`PROVIDER`) every request goes through;
- `oauth`: the token endpoint (`refresh_access_token`, `exchange_code`) and `api`, one call
  with the account's fresh access token, answering its `data` object;
- `display`: `tiktok.user_info`, `tiktok.videos`;
- `chunks` and `upload`: how a file is cut, and its chunks sent to the `upload_url`;
- `publish`: `tiktok.creator_info`, `tiktok.publish_video`, `tiktok.upload_draft`,
  `tiktok.publish_status`, and how a retried publish continues instead of posting twice.

Importing the package registers all six actions.
"""

from __future__ import annotations

from activities.tiktok.chunks import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, ChunkPlan, plan_chunks
from activities.tiktok.client import PROVIDER
from activities.tiktok.display import UserInfoInput, VideoListInput
from activities.tiktok.errors import NAME, classify, classify_oauth, classify_upload
from activities.tiktok.oauth import exchange_code, refresh_access_token
from activities.tiktok.publish import (
    CreatorInfoInput,
    PublishStatusInput,
    PublishVideoInput,
    UploadDraftInput,
    VideoSourceInput,
)

__all__ = [
    "MAX_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "NAME",
    "PROVIDER",
    "ChunkPlan",
    "CreatorInfoInput",
    "PublishStatusInput",
    "PublishVideoInput",
    "UploadDraftInput",
    "UserInfoInput",
    "VideoListInput",
    "VideoSourceInput",
    "classify",
    "classify_oauth",
    "classify_upload",
    "exchange_code",
    "plan_chunks",
    "refresh_access_token",
]
