"""HighLevel (LeadConnector) Social Planner: the connected accounts, TikTok profiles and posts.

Every call sends the location's token as `Authorization: Bearer …` and `Version: 2021-07-28`.
The location and the user a post is created by default to the credential's `location_id` and
`user_id`. HighLevel's five `X-RateLimit-*` headers (burst 100 per 10 s, 200,000 per day) are read
by the shared limiter in `activities.http.send`; `classify` maps the error bodies
(`{statusCode, message, error}`, `message` a list on 422) into the error tree.

The rooms: `errors` (the classifier), `client` (the provider declaration and the location acted
in), `accounts` (`highlevel.accounts`, `highlevel.tiktok_profile`) and `posts`
(`highlevel.create_post`, once per step however often retried; `get_post`, `list_posts`), and
`oauth` (marketplace-app OAuth tokens, refreshed like TikTok's, beside static tokens).
Importing the package registers all five actions.
"""

from __future__ import annotations

from activities.highlevel.accounts import AccountsInput, TiktokProfileInput
from activities.highlevel.client import API_VERSION, PROVIDER
from activities.highlevel.errors import NAME, classify
from activities.highlevel.posts import (
    CreatePostInput,
    GetPostInput,
    ListPostsInput,
    PostMedia,
    TiktokPostDetails,
)

__all__ = [
    "API_VERSION",
    "NAME",
    "PROVIDER",
    "AccountsInput",
    "CreatePostInput",
    "GetPostInput",
    "ListPostsInput",
    "PostMedia",
    "TiktokPostDetails",
    "TiktokProfileInput",
    "classify",
]
