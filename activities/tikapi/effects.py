"""The `tikapi.*` side effects, each safe to run twice (each docstring says how)."""

from __future__ import annotations

from typing import Any

import structlog

from activities.errors import ProviderRejected
from activities.ledger import ledger_for
from activities.registry import ActionContext, action
from activities.tikapi.client import ENTITY_GONE_CODE, GONE, PROVIDER
from activities.tikapi.identity import done_before, find_own, remember, whoami
from activities.tikapi.inputs import (
    AcceptRequestInput,
    CommentInput,
    CommentRefInput,
    DeleteCommentInput,
    LikeVideoInput,
    ReplyInput,
    SendMessageInput,
)
from activities.tikapi.paging import CONVERSATIONS, MY_COMMENTS, MY_REPLIES
from activities.tikapi.shapes import conversation_item, message_item, posted, sent_message_id

__all__: list[str] = []

log = structlog.get_logger()


@action("tikapi.reply", ReplyInput, endpoint="POST /user/comment", side_effect=True)
async def reply(ctx: ActionContext, params: ReplyInput) -> dict[str, Any]:
    """Reply to a comment; `comment` is the reply, `already_done` says it existed before this call.

    Idempotent: before posting, the replies under the parent comment (first `CHECK_PAGES` pages,
    read with the account's session) are searched for one by our own user with the same text; if
    found it is returned instead of posting again. The worker also remembers the idempotency key
    of every reply it posted, for retries whose listing lags behind.
    """
    if (earlier := done_before(ctx)) is not None:
        return earlier
    ref = {"media_id": params.media_id, "comment_id": params.reply_comment_id}
    existing = await find_own(ctx, MY_REPLIES, ref, params.text)
    if existing is not None:
        log.info("tikapi.reply.already_done", media_id=params.media_id, cid=existing["cid"])
        return {"comment": existing, "already_done": True}
    body = await PROVIDER.request(
        ctx,
        "POST",
        "/user/comment",
        json_body={
            "media_id": params.media_id,
            "text": params.text,
            "reply_comment_id": params.reply_comment_id,
        },
    )
    return remember(ctx, {"comment": posted(body), "already_done": False})


@action("tikapi.comment", CommentInput, endpoint="POST /user/comment", side_effect=True)
async def comment(ctx: ActionContext, params: CommentInput) -> dict[str, Any]:
    """Post a top-level comment on a video; `comment` is it, `already_done` as for `tikapi.reply`.

    Idempotent: the video's comments (first `CHECK_PAGES` pages, with the account's session) are
    searched for a top-level comment by our own user with the same text first, and this worker's
    earlier results are remembered by idempotency key. On a video with thousands of comments our
    earlier one may lie beyond the pages read: that window is the memory's to cover.
    """
    if (earlier := done_before(ctx)) is not None:
        return earlier
    existing = await find_own(ctx, MY_COMMENTS, {"media_id": params.media_id}, params.text)
    if existing is not None:
        log.info("tikapi.comment.already_done", media_id=params.media_id, cid=existing["cid"])
        return {"comment": existing, "already_done": True}
    body = await PROVIDER.request(
        ctx, "POST", "/user/comment", json_body={"media_id": params.media_id, "text": params.text}
    )
    return remember(ctx, {"comment": posted(body), "already_done": False})


@action("tikapi.like_comment", CommentRefInput, endpoint="POST /user/comment/like", side_effect=True)
async def like_comment(ctx: ActionContext, params: CommentRefInput) -> dict[str, Any]:
    """Like a comment.

    Idempotent by nature: like and unlike are separate set-state endpoints (not a toggle), so
    liking an already-liked comment leaves it liked; no check is spent on it.
    """
    return await _set_comment_like(ctx, params, liked=True)


async def _set_comment_like(ctx: ActionContext, params: CommentRefInput, *, liked: bool) -> dict[str, Any]:
    """Like or unlike a comment (two set-state endpoints, the same body)."""
    path = "/user/comment/like" if liked else "/user/comment/unlike"
    await PROVIDER.request(
        ctx, "POST", path, json_body={"media_id": params.media_id, "comment_id": params.comment_id}
    )
    return {"liked": liked}


@action("tikapi.like_video", LikeVideoInput, endpoint="POST /user/like", side_effect=True)
async def like_video(ctx: ActionContext, params: LikeVideoInput) -> dict[str, Any]:
    """Like a video.

    Idempotent by nature, as `tikapi.like_comment`: a second like leaves the video liked.
    """
    await PROVIDER.request(ctx, "POST", "/user/like", json_body={"media_id": params.media_id})
    return {"liked": True}


@action("tikapi.unlike_comment", CommentRefInput, endpoint="POST /user/comment/unlike", side_effect=True)
async def unlike_comment(ctx: ActionContext, params: CommentRefInput) -> dict[str, Any]:
    """Take back our like of a comment.

    Idempotent by nature, as `tikapi.like_comment`: unliking a comment we do not like leaves it so.
    """
    return await _set_comment_like(ctx, params, liked=False)


@action("tikapi.unlike_video", LikeVideoInput, endpoint="POST /user/unlike", side_effect=True)
async def unlike_video(ctx: ActionContext, params: LikeVideoInput) -> dict[str, Any]:
    """Take back our like of a video.

    Idempotent by nature, as `tikapi.like_video`: a second unlike leaves the video unliked.
    """
    await PROVIDER.request(ctx, "POST", "/user/unlike", json_body={"media_id": params.media_id})
    return {"liked": False}


@action("tikapi.delete_comment", DeleteCommentInput, endpoint="POST /user/comment/delete", side_effect=True)
async def delete_comment(ctx: ActionContext, params: DeleteCommentInput) -> dict[str, Any]:
    """Delete one of our comments; `already_done` when it was already gone.

    Idempotent: a comment that no longer exists (404, TikTok "entity doesn't exist", or a message
    saying so) is the state we wanted, so a retry after the first delete succeeds.
    """
    try:
        await PROVIDER.request(
            ctx, "POST", "/user/comment/delete", json_body={"comment_id": params.comment_id}
        )
    except ProviderRejected as err:
        if err.status == 404 or err.code == ENTITY_GONE_CODE or GONE.search(err.message):
            log.info("tikapi.delete_comment.already_done", cid=params.comment_id)
            return {"deleted": True, "already_done": True}
        raise
    return {"deleted": True, "already_done": False}


@action("tikapi.send_message", SendMessageInput, endpoint="POST /user/message/send", side_effect=True)
async def send_message(ctx: ActionContext, params: SendMessageInput) -> dict[str, Any]:
    """Send a direct message, once per step however often retried; `already_done` on a retry.

    Idempotent by the step's idempotency key, not by the text: the same template sent for two
    messages of one conversation is two messages. Before sending, the ids of our messages with this
    text on the conversation's latest page go into the effect ledger with a note that a send is
    under way; a retry that finds the note and a new message of ours with the text there takes it
    as the one the earlier attempt sent (it died before it could record it). A retry that finds the
    send recorded (in the ledger, or in this worker's memory) returns it without a request.
    """
    if (earlier := done_before(ctx)) is not None:
        return earlier
    ledger = ledger_for(ctx.services)
    key = f"tikapi.send_message:{ctx.idempotency_key}"
    recorded = ledger.get(key)
    if recorded is not None and not recorded.get("pending"):
        return {"message": recorded.get("message"), "already_done": True}
    me_ = await whoami(ctx)
    ref = {"conversation_id": params.conversation_id, "conversation_short_id": params.conversation_short_id}
    latest = await PROVIDER.request(ctx, "GET", "/user/messages", params=ref)
    wanted = params.text.strip()
    ours = [
        message
        for message in (message_item(raw) for raw in PROVIDER.items(ctx, latest, "messages"))
        if message["text"].strip() == wanted and me_.wrote(message["sender_id"], "")
    ]
    if recorded is not None:
        before = set(recorded.get("before") or [])
        sent = next((message for message in ours if message["id"] not in before), None)
        if sent is not None:
            log.info("tikapi.send_message.already_done", message_id=sent["id"])
            ledger.put(key, {"message": sent}, run=ctx.run)
            remember(ctx, {"message": sent, "already_done": False})
            return {"message": sent, "already_done": True}
    else:
        ledger.put(key, {"pending": True, "before": [m["id"] for m in ours]}, run=ctx.run)
    body = await PROVIDER.request(
        ctx, "POST", "/user/message/send", json_body={**ref, "text": params.text, "ticket": params.ticket}
    )
    message = {"id": sent_message_id(body), "text": params.text, "sender_id": me_.user_id}
    ledger.put(key, {"message": message}, run=ctx.run)
    return remember(ctx, {"message": message, "already_done": False})


@action(
    "tikapi.accept_request",
    AcceptRequestInput,
    endpoint="GET /user/conversations/requests/accept",
    side_effect=True,
)
async def accept_request(ctx: ActionContext, params: AcceptRequestInput) -> dict[str, Any]:
    """Accept a message request; `already_done` when it had been accepted before.

    Idempotent: when TikTok refuses the accept, the account's conversations are read and, if the
    conversation is already there (accepted earlier, e.g. by the attempt this one retries), that
    counts as success.
    """
    query = {
        "conversation_id": params.conversation_id,
        "conversation_short_id": params.conversation_short_id,
        "user_id": params.user_id,
    }
    try:
        await PROVIDER.request(ctx, "GET", "/user/conversations/requests/accept", params=query)
    except ProviderRejected:
        inbox = await PROVIDER.request(ctx, "GET", CONVERSATIONS.path)
        ids = {
            conversation_item(raw)["conversation_id"] for raw in PROVIDER.items(ctx, inbox, "conversations")
        }
        if params.conversation_id in ids:
            log.info("tikapi.accept_request.already_done")
            return {"accepted": True, "already_done": True}
        raise
    return {"accepted": True, "already_done": False}
