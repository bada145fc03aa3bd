"""The `with:` models of the `tikapi.*` actions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from activities.registry import ActionInput, PagedInput
from activities.tikapi.client import PAGE_SIZE


class CountMixin(ActionInput):
    """A listing's page size."""

    count: int = Field(default=PAGE_SIZE, ge=1, le=30, description="Items per page (TikAPI allows 30).")


class NoInput(ActionInput):
    """An action without parameters."""


class ProfileInput(ActionInput):
    """Which public profile to read."""

    username: str | None = Field(default=None, description="TikTok username (without @).")
    user_id: str | None = Field(default=None, description="TikTok numeric user id, instead of username.")

    @model_validator(mode="after")
    def _one_of(self) -> ProfileInput:
        if not self.username and not self.user_id:
            raise ValueError("give `username` or `user_id`")
        return self


class UserPostsInput(CountMixin, PagedInput):
    """A user's public posts."""

    sec_uid: str = Field(min_length=1, description="The user's secUid (from `tikapi.profile`).")
    cursor: str | None = Field(default=None, description="Resume from this cursor (a previous result's).")


class HashtagPostsInput(CountMixin, PagedInput):
    """A hashtag's posts, by name or id."""

    name: str | None = Field(default=None, description="Hashtag name without `#` (first call).")
    id: str | None = Field(default=None, description="Hashtag id (known from an earlier result).")
    cursor: str | None = Field(default=None, description="Resume from this cursor (a previous result's).")

    @model_validator(mode="after")
    def _one_of(self) -> HashtagPostsInput:
        if not self.name and not self.id:
            raise ValueError("give `name` or `id`")
        return self


class VideoInput(ActionInput):
    """One video."""

    id: str = Field(min_length=1, description="Video id (or a vm.tiktok.com short link).")


class SearchInput(PagedInput):
    """A search query."""

    category: Literal["general", "users", "videos", "autocomplete"] = Field(
        default="videos", description="What to search for."
    )
    query: str = Field(min_length=1, description="Search text.")
    cursor: str | None = Field(default=None, description="Resume from this `nextCursor`.")


class ExploreInput(CountMixin):
    """The For You (trending) feed."""


class CommentsInput(CountMixin, PagedInput):
    """A video's comments."""

    media_id: str = Field(min_length=1, description="Video id.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this cursor.")


class RepliesInput(CountMixin, PagedInput):
    """The replies to one comment."""

    media_id: str = Field(min_length=1, description="Video id.")
    comment_id: str = Field(min_length=1, description="The parent comment's `cid`.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this cursor.")


class ReplyInput(ActionInput):
    """A reply to post under a comment."""

    media_id: str = Field(min_length=1, description="Video id.")
    reply_comment_id: str = Field(pattern=r"^[0-9]+$", description="The `cid` of the comment to answer.")
    text: str = Field(min_length=1, max_length=150, description="Reply text.")


class CommentInput(ActionInput):
    """A top-level comment to post on a video."""

    media_id: str = Field(min_length=1, description="Video id.")
    text: str = Field(min_length=1, max_length=150, description="Comment text.")


class CommentRefInput(ActionInput):
    """One comment on one video."""

    media_id: str = Field(min_length=1, description="Video id.")
    comment_id: str = Field(pattern=r"^[0-9]+$", description="Comment `cid`.")


class DeleteCommentInput(ActionInput):
    """A comment of ours to delete."""

    comment_id: str = Field(pattern=r"^[0-9]+$", description="Comment `cid`.")


class LikeVideoInput(ActionInput):
    """A video to like (or unlike)."""

    media_id: str = Field(min_length=1, description="Video id.")


class FeedInput(CountMixin, PagedInput):
    """The account's own posts (or another user's, by secUid)."""

    sec_uid: str | None = Field(default=None, description="Another user's secUid; default: our own.")
    cursor: str | None = Field(default=None, description="Resume from this cursor.")


class FollowersInput(CountMixin, PagedInput):
    """The account's followers (or another user's, by secUid)."""

    sec_uid: str | None = Field(default=None, description="Another user's secUid; default: our own.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this `nextCursor`.")


class PublicFollowersInput(CountMixin, PagedInput):
    """Any user's followers or followings, from the public listing."""

    sec_uid: str = Field(min_length=1, description="The user's secUid (from `tikapi.profile`).")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this `nextCursor`.")


class LikedPostsInput(CountMixin, PagedInput):
    """The videos the account liked (or another user's, by secUid, if theirs are public)."""

    sec_uid: str | None = Field(default=None, description="Another user's secUid; default: our own.")
    cursor: str | None = Field(default=None, description="Resume from this cursor.")


class RelatedPostsInput(ActionInput):
    """A video to find related videos for."""

    video_id: str = Field(min_length=1, description="Video id (or a vm.tiktok.com short link).")


class ConversationsInput(PagedInput):
    """The account's conversations (inbox or requests)."""

    cursor: int | None = Field(default=None, ge=0, description="Resume from this `nextCursor`.")


class ConversationRef(ActionInput):
    """One conversation (TikTok uses two ids for it)."""

    conversation_id: str = Field(min_length=1, description="Conversation id (`0:1:…`).")
    conversation_short_id: str = Field(min_length=1, description="Conversation short id.")


class MessagesInput(ConversationRef, PagedInput):
    """The messages of one conversation."""

    limit: int | None = Field(default=None, ge=1, le=99, description="Messages per page.")
    cursor: str | None = Field(default=None, description="Resume from this `nextCursor`.")
    exclude_own: bool = Field(
        default=True,
        description=(
            "Leave out the messages the account itself sent (so an auto-reply never answers its "
            "own reply); false lists both sides of the conversation."
        ),
    )


class SendMessageInput(ConversationRef):
    """A direct message to send."""

    text: str = Field(min_length=1, description="Message text.")
    ticket: str = Field(min_length=1, description="The conversation's ticket (from `tikapi.conversations`).")


class AcceptRequestInput(ConversationRef):
    """A message request to accept."""

    user_id: str = Field(pattern=r"^[0-9]+$", description="The requesting user's id.")


class NotificationsInput(CountMixin, PagedInput):
    """The account's notifications."""

    filter: Literal["all", "likes", "comments", "mentions", "followers"] = Field(
        default="all", description="Which notifications."
    )
    max_time: int | None = Field(default=None, description="Resume: `cursor.max_time` of a previous result.")
    min_time: int | None = Field(default=None, description="Resume: `cursor.min_time` of a previous result.")


class AnalyticsInput(ActionInput):
    """Creator analytics."""

    type: Literal["overview", "content", "video", "followers", "live"] = Field(
        default="overview", description="Which analytics."
    )
    days: int = Field(default=7, ge=1, le=365, description="Time frame in days.")
    media_id: str | None = Field(default=None, description="Video id (only for type `video`).")
