"""The sandbox's world: seeded users, hashtags, videos, comments, messages, posts and keys.

Everything the five stand-ins serve lives here, so what one provider changes (a reply posted
through TikAPI, a video published through TikTok's Content Posting API) shows up in later
listings of every provider. Deterministic for a given seed; time comes from an injectable clock so
tests never sleep.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "COMMENT_TEXTS",
    "DEMO_ACCOUNT_KEY",
    "DEMO_API_KEY",
    "DUMPLING_KEY",
    "HIGHLEVEL_ACCOUNT",
    "HIGHLEVEL_LOCATION",
    "HIGHLEVEL_TOKEN",
    "HIGHLEVEL_USER",
    "ME",
    "SOCIALAPI_ACCOUNT",
    "SOCIALAPI_KEY",
    "SOCIALAPI_TIKTOK_CLIENT_KEY",
    "TIKTOK_CLIENT_KEY",
    "TIKTOK_CLIENT_SECRET",
    "TIKTOK_OPEN_ID",
    "TIKTOK_UNION_ID",
    "Comment",
    "Conversation",
    "EmulatorConfig",
    "Message",
    "Publish",
    "User",
    "Video",
    "World",
]

#: TikAPI's documented sandbox keys, accepted by default. The docs win: TikAPI's REST reference
#: (seed 004, "Sandbox Account Key") and the official client's `example` give the account key as
#: below; the copy in our reference notes (tikapi-endpoints.md) is cut 8 characters short.
DEMO_API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
DEMO_ACCOUNT_KEY = "DemoAccountKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39A"
#: Our own TikTok account: the demo account key and the TikTok tokens act as this user.
ME = "tikflow_demo"
#: Fixed keys of the other providers' sandboxes (`tikflow.emulator.demo_credentials`).
DUMPLING_KEY = "sk_sandbox_dumpling_0123456789abcdef"
SOCIALAPI_KEY = "sk_sandbox_socialapi_0123456789abcdef"
HIGHLEVEL_TOKEN = "pit-sandbox-highlevel-0123456789abcdef"
TIKTOK_CLIENT_KEY = "sbawsandboxclientkey"
TIKTOK_CLIENT_SECRET = "sandbox-client-secret-0123456789"
#: The TikTok app SocialAPI connects accounts with (its auth_url goes to our TikTok authorize).
SOCIALAPI_TIKTOK_CLIENT_KEY = "sbawsocialapiclient"
#: TikTok's example open_id and union_id (seed 001), for our account.
TIKTOK_OPEN_ID = "723f24d7-e717-40f8-a2b6-cb8464cd23b4"
TIKTOK_UNION_ID = "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1"
#: HighLevel's example ids from its docs (seed 000) and a user id of the location.
HIGHLEVEL_LOCATION = "w37swmmLbA02zgqKPpxITe2"
HIGHLEVEL_ACCOUNT = "w37swmmLbA02zgqKPpxITe"
HIGHLEVEL_USER = "TqeG7o8JkJe0zvGFiEJB"
#: SocialAPI's connected TikTok account (the docs' example id, seed 003).
SOCIALAPI_ACCOUNT = "acc_01HZ9X3Q4R5M6N7P8V2K0W1J"

#: Comment texts of seeded and arriving comments; several ask for a price, one is spam, so
#: keyword filters in recipes have something to match and something to skip.
COMMENT_TEXTS = (
    "love this so much",
    "what's the price?",
    "how much does it cost",
    "so cute 😻",
    "where can I buy it",
    "first!",
    "this made my day",
    "price please 🙏",
    "tutorial next?",
    "free followers at my profile",
    "amazing edit",
    "cost?",
)
_FANS = (
    "catlover99",
    "meowmaster",
    "purrfect_day",
    "kittykat",
    "dogdad",
    "sara.travels",
    "buyer_bob",
    "crafty_jo",
    "spam_bot_3000",
    "nina_art",
)
#: Famous accounts: they do not comment or follow in the seeded world.
_STARS = ("lilyachty", "stoolpresidente")


@dataclass
class EmulatorConfig:
    """How the sandbox behaves; change at runtime with `POST /_admin/config`.

    Rate limits follow each provider's documented quotas; 0 turns a limit off.

    Attributes:
        seed: Seed of the generated world and of probabilistic faults.
        comment_interval_s: >0: a new comment arrives on a listed video every this many seconds
            of clock time (lazily, on listing requests); 0: comments only arrive through
            `POST /_admin/tick`.
        publish_polls: Status fetches after an upload or download completes before the publish
            reaches its final status (also reads of a HighLevel or SocialAPI post before it is
            published).
        tiktok_token_ttl_s: `expires_in` of TikTok access tokens.
        tiktok_refresh_ttl_s: `refresh_expires_in` of TikTok refresh tokens.
        tiktok_per_minute: Per-minute requests per access token and endpoint, by endpoint path
            (TikTok's documented limits); endpoints not listed get `tiktok_default_per_minute`.
        tiktok_default_per_minute: TikTok's limit for other endpoints (Display API: 600).
        tiktok_min_chunk_bytes: The smallest upload chunk (documented: 5 MB; smaller files go
            whole). Lower it to test chunked uploads with small files.
        tiktok_app_audited: Whether the sandbox's TikTok app passed TikTok's audit. A new app has
            not (the default): creator info offers only SELF_ONLY, direct posts must be SELF_ONLY
            from an account that is private at the time, for at most
            `tiktok_unaudited_daily_creators` creators in 24 h (403
            `unaudited_client_can_only_post_to_private_accounts` / `reached_active_user_cap`).
        tiktok_account_private: Whether the demo creator's account is set to private.
        tiktok_unaudited_daily_creators: Creators an unaudited app may post for per 24 h
            (documented: 5).
        tiktok_moderation_s: Seconds a public post spends in moderation after PUBLISH_COMPLETE
            before `publicaly_available_post_id` lists it (documented: usually under a minute,
            sometimes hours).
        tikapi_per_second: TikAPI requests per second per API key (0 = unlimited, as documented:
            TikAPI limits a plan by daily quota, not by rate).
        tikapi_daily: TikAPI requests per UTC day per API key (0 = unlimited).
        tikapi_retry_after: Seconds sent in `Retry-After` on TikAPI's quota 429s; None sends no
            reset header, as TikAPI documents none (a client must then guess).
        highlevel_burst: HighLevel requests per `highlevel_burst_window_s` per token.
        highlevel_burst_window_s: HighLevel's burst window (documented: 10 s).
        highlevel_daily: HighLevel requests per UTC day per token (documented: 200,000).
        dumpling_per_minute: DumplingAI requests per minute per key (reported in `X-RateLimit-*`).
        dumpling_credits: DumplingAI credits of the sandbox key (10 per profile request, 1 for
            other requests); 403 when they run out.
        socialapi_per_minute: SocialAPI requests per minute per key (its plan quota).
        webhook_url: The TikTok app's webhook callback URL: signed events about publishes and
            authorizations are POSTed there (`tikflow.emulator.webhooks`), and a publish finishes
            as soon as its bytes are in instead of after `publish_polls` status fetches. None:
            no events.
        webhook_retry_delays_s: Seconds before each retry of a delivery that got no 2xx (TikTok
            retries with exponential backoff for up to 72 hours); after the last, it is dropped.
        webhook_delay_s: Seconds between an event and its first delivery attempt.
        webhook_duplicates: Extra deliveries of every event (TikTok delivers at least once).
        webhook_out_of_order: Deliver the events of one change last first (a publish's
            `post.publish.publicly_available` before its `post.publish.complete`).
        clock: Time source (seconds since the epoch) for windows, token expiry and arrivals.
    """

    seed: int = 7
    comment_interval_s: float = 0.0
    publish_polls: int = 2
    tiktok_token_ttl_s: int = 86_400
    tiktok_refresh_ttl_s: int = 31_536_000
    tiktok_per_minute: dict[str, int] = field(
        default_factory=lambda: {
            "/v2/post/publish/creator_info/query/": 20,
            "/v2/post/publish/video/init/": 6,
            "/v2/post/publish/inbox/video/init/": 6,
            "/v2/post/publish/status/fetch/": 30,
        }
    )
    tiktok_default_per_minute: int = 600
    tiktok_min_chunk_bytes: int = 5 * 1024 * 1024
    tiktok_app_audited: bool = False
    tiktok_account_private: bool = True
    tiktok_unaudited_daily_creators: int = 5
    tiktok_moderation_s: float = 60.0
    tikapi_per_second: int = 0
    tikapi_daily: int = 0
    tikapi_retry_after: float | None = None
    highlevel_burst: int = 100
    highlevel_burst_window_s: float = 10.0
    highlevel_daily: int = 200_000
    dumpling_per_minute: int = 600
    dumpling_credits: int = 100_000
    socialapi_per_minute: int = 600
    webhook_url: str | None = None
    webhook_retry_delays_s: tuple[float, ...] = tuple(5.0 * 2**i for i in range(15))
    webhook_delay_s: float = 0.0
    webhook_duplicates: int = 0
    webhook_out_of_order: bool = False
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def public(self) -> dict[str, Any]:
        """The settings as JSON (everything but the clock)."""
        return {k: v for k, v in asdict(self).items() if k != "clock"}


@dataclass
class User:
    """A TikTok user."""

    id: str
    unique_id: str
    nickname: str
    sec_uid: str
    followers: int
    following: int
    hearts: int
    signature: str = ""
    region: str = "US"
    create_time: int = 1_550_594_547


@dataclass
class Video:
    """A TikTok video."""

    id: str
    author: str
    desc: str
    create_time: int
    hashtags: list[str]
    plays: int
    likes: int
    duration: int = 15
    liked_by: list[str] = field(default_factory=list)


@dataclass
class Comment:
    """A comment or a reply; `author` is a unique id.

    TikTok threads two levels deep: `reply_to` is the top-level comment a reply sits under, and
    `reply_to_reply` the reply it answers, if any.
    """

    cid: str
    aweme_id: str
    text: str
    author: str
    create_time: int
    reply_to: str | None = None
    reply_to_reply: str | None = None
    liked_by: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Message:
    """A direct message; `sender` is a unique id."""

    id: str
    conversation_id: str
    sender: str
    text: str
    create_time: int


@dataclass
class Conversation:
    """A DM conversation of our account; `request` ones wait in the message-requests tab."""

    conversation_id: str
    short_id: str
    ticket: str
    peer: str
    request: bool = False
    read: bool = False
    deleted: bool = False


@dataclass
class Publish:
    """A TikTok Content Posting API publish (`video/init` or `inbox/video/init`)."""

    publish_id: str
    open_id: str
    source: str
    inbox: bool
    title: str
    privacy_level: str | None
    status: str
    created_at: float
    fail_reason: str | None = None
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    video_size: int = 0
    chunk_size: int = 0
    total_chunk_count: int = 0
    chunks_received: int = 0
    received_ranges: list[tuple[int, int]] = field(default_factory=list)
    video_url: str | None = None
    upload_id: str | None = None
    upload_token: str | None = None
    upload_expires_at: float = 0.0
    is_mp4: bool | None = None
    polls: int = 0
    post_id: str | None = None
    completed_at: float | None = None


class World:
    """All sandbox state, seeded from `config.seed`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._next_id = 7_300_000_000_000_000_000
        self.users: dict[str, User] = {}
        self.followers_of: dict[str, list[str]] = {}
        self.videos: dict[str, Video] = {}
        self.comments: dict[str, Comment] = {}
        self.hashtags: dict[str, dict[str, str]] = {}
        self.conversations: dict[str, Conversation] = {}
        self.messages: list[Message] = []
        self.publishes: dict[str, Publish] = {}
        self.highlevel_posts: dict[str, dict[str, Any]] = {}
        self.socialapi_posts: dict[str, dict[str, Any]] = {}
        self.post_reads: Counter[str] = Counter()
        # Credentials. TikAPI: API keys; account key → unique id; expired account keys; the keys
        # `session/check` removed (key → unique id: a new authorization still knows the user).
        self.tikapi_api_keys: set[str] = {DEMO_API_KEY}
        self.tikapi_account_keys: dict[str, str] = {DEMO_ACCOUNT_KEY: ME}
        self.expired_account_keys: set[str] = set()
        self.removed_account_keys: dict[str, str] = {}
        self.bearer_keys: dict[str, set[str]] = {
            "dumpling": {DUMPLING_KEY},
            "socialapi": {SOCIALAPI_KEY},
            "highlevel": {HIGHLEVEL_TOKEN},
        }
        self.dumpling_credits = config.dumpling_credits
        # SocialAPI: whether the connected account's platform token lapsed; pending connects.
        self.socialapi_expired = False
        self.socialapi_states: dict[str, str] = {}
        # TikTok OAuth: registered apps; token → (open_id, expires_at); code → (client, open_id).
        self.tiktok_clients = {
            TIKTOK_CLIENT_KEY: TIKTOK_CLIENT_SECRET,
            SOCIALAPI_TIKTOK_CLIENT_KEY: "socialapi-internal-secret",
        }
        self.tiktok_access: dict[str, tuple[str, float]] = {}
        self.tiktok_refresh: dict[str, tuple[str, float]] = {}
        self.tiktok_codes: dict[str, tuple[str, str]] = {}
        self.refresh_calls = 0
        # Traffic, as `GET /_admin/state` reports it.
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.last_arrival = config.clock()
        self._seed()

    # -- ids and time -----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock."""
        return self.config.clock()

    def new_id(self) -> str:
        """A fresh TikTok-style numeric id (increasing, so newer things have larger ids)."""
        self._next_id += self.rng.randint(1_000, 9_999_999)
        return str(self._next_id)

    def token(self, prefix: str, size: int = 32) -> str:
        """A fresh random-looking secret, deterministic under the seed."""
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return prefix + "".join(self.rng.choice(alphabet) for _ in range(size))

    # -- seed -------------------------------------------------------------------------------

    def _user(self, unique_id: str, followers: int, **known: Any) -> User:
        user = User(
            id=known.pop("id", None) or self.new_id(),
            unique_id=unique_id,
            nickname=known.pop("nickname", None) or unique_id.replace("_", " ").title(),
            sec_uid=known.pop("sec_uid", None) or "MS4wLjABAAAA" + self.token("", 40),
            followers=followers,
            following=known.pop("following", None) or self.rng.randint(10, 900),
            hearts=known.pop("hearts", None) or followers * self.rng.randint(3, 20),
            **known,
        )
        self.users[unique_id] = user
        self.followers_of[unique_id] = []
        return user

    def _seed(self) -> None:
        now = int(self.now())
        self._user("lilyachty", 9_800_000, id="6802045838165393414", nickname="Lil Yachty")
        # DumplingAI's documented example profile (seed 002).
        self._user(
            "stoolpresidente",
            4_100_000,
            id="6659752019493208069",
            nickname="Dave Portnoy",
            sec_uid="MS4wLjABAAAAINC_ElRR-l1RCcnEjOZhNO-9wOzAMf-YHXqRY8vvG9bEhMRa6iu23TaE3JPZYXBD",
            following=74,
            hearts=190_400_000,
            signature="El Presidente/Barstool Sports Founder.",
        )
        self._user(ME, 1_250, nickname="Tikflow Demo", signature="Automations by tikflow.")
        for name in _FANS:
            self._user(name, self.rng.randint(10, 5000))
        # Who follows whom: every fan follows us and the stars; we follow the stars.
        for star in (*_STARS, ME):
            self.followers_of[star] = list(_FANS)
        self.followers_of["lilyachty"].append(ME)
        self.followers_of["stoolpresidente"].append(ME)
        self.hashtags = {
            "lilyachty": {"id": "1659902394498053", "title": "lilyachty"},
            "cats": {"id": "5635", "title": "cats"},
            "tikflowdemo": {"id": "7000000000000000001", "title": "tikflowdemo"},
        }
        # The docs' example video and comment (TikAPI's own sandbox serves them).
        doc_video = Video(
            id="7109178205151464746",
            author="lilyachty",
            desc="new music soon #lilyachty",
            create_time=now - 86400 * 30,
            hashtags=["lilyachty"],
            plays=2_400_000,
            likes=310_000,
        )
        self.videos[doc_video.id] = doc_video
        self.comments["7109185042560680750"] = Comment(
            cid="7109185042560680750",
            aweme_id=doc_video.id,
            text="this is fire 🔥",
            author="catlover99",
            create_time=now - 86400 * 29,
        )
        owners = {
            "lilyachty": ["lilyachty"],
            "cats": list(_FANS[:4]),
            "tikflowdemo": [ME, "nina_art", "crafty_jo"],
        }
        for tag, authors in owners.items():
            for n in range(12 if tag != "lilyachty" else 5):
                video = Video(
                    id=self.new_id(),
                    author=authors[n % len(authors)],
                    desc=f"video {n} #{tag} #fyp",
                    create_time=now - 3600 * (n + 1) * 7,
                    hashtags=[tag],
                    plays=self.rng.randint(500, 900_000),
                    likes=self.rng.randint(10, 50_000),
                )
                self.videos[video.id] = video
                for _ in range(self.rng.randint(2, 6)):
                    self.add_comment(video.id, created=now - self.rng.randint(60, 3600 * 24))
        # Our inbox: one conversation, one message request, each with a message from the peer.
        for peer, is_request in (("buyer_bob", False), ("sara.travels", True)):
            self._conversation(peer, request=is_request, text="hi! is this still available?", at=now - 600)

    def _conversation(self, peer: str, *, request: bool, text: str, at: int) -> Conversation:
        conv = Conversation(
            conversation_id=f"0:1:{self.users[ME].id}:{self.users[peer].id}",
            short_id=self.new_id(),
            ticket=self.token("ticket_", 24),
            peer=peer,
            request=request,
        )
        self.conversations[conv.conversation_id] = conv
        self.messages.append(Message(self.new_id(), conv.conversation_id, peer, text, at))
        return conv

    # -- changes ----------------------------------------------------------------------------

    def add_comment(
        self,
        video_id: str,
        *,
        text: str | None = None,
        author: str | None = None,
        reply_to: str | None = None,
        reply_to_reply: str | None = None,
        created: int | None = None,
    ) -> Comment:
        """Add a comment (seeded-random text and fan author unless given)."""
        comment = Comment(
            cid=self.new_id(),
            aweme_id=video_id,
            text=text or self.rng.choice(COMMENT_TEXTS),
            author=author or self.rng.choice(_FANS),
            create_time=created or int(self.now()),
            reply_to=reply_to,
            reply_to_reply=reply_to_reply,
        )
        self.comments[comment.cid] = comment
        return comment

    def arrive(self, video_ids: list[str]) -> None:
        """Comments that arrived on these videos since the last listing, when arrivals are on."""
        interval = self.config.comment_interval_s
        if interval <= 0 or not video_ids:
            return
        due = int((self.now() - self.last_arrival) / interval)
        # Cap a long idle gap: a monitor wants fresh work, not ten thousand comments at once.
        for _ in range(min(due, 50)):
            self.add_comment(self.rng.choice(video_ids))
        if due:
            self.last_arrival += due * interval

    def tick(
        self,
        comments: int = 0,
        video_id: str | None = None,
        hashtag: str | None = None,
        text: str | None = None,
        messages: int = 0,
        message_requests: int = 0,
        followers: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """New activity now: comments (on a video, a hashtag's videos, or anywhere), DMs, follows.

        Returns what was created: `comments`, `messages` and `message_requests` (conversations).
        """
        for handle, delta in (followers or {}).items():
            self.users[handle].followers += delta
        if video_id:
            if video_id not in self.videos:
                raise ValueError(f"no video {video_id}")
            targets = [video_id]
        elif hashtag:
            targets = [v.id for v in self.videos.values() if hashtag.lstrip("#") in v.hashtags]
            if not targets:
                raise ValueError(f"no video with hashtag {hashtag}")
        else:
            targets = list(self.videos)
        made = [asdict(self.add_comment(self.rng.choice(targets), text=text)) for _ in range(comments)]
        now = int(self.now())
        sent = []
        open_conversations = [c for c in self.conversations.values() if not c.request and not c.deleted]
        if messages and not open_conversations:
            raise ValueError("no accepted conversation to send messages in")
        for _ in range(messages):
            conv = self.rng.choice(open_conversations)
            msg = Message(
                self.new_id(), conv.conversation_id, conv.peer, text or self.rng.choice(COMMENT_TEXTS), now
            )
            self.messages.append(msg)
            conv.read = False
            sent.append(asdict(msg))
        strangers = [u for u in _FANS if not any(c.peer == u for c in self.conversations.values())]
        opened = []
        for peer in strangers[:message_requests]:
            conv = self._conversation(peer, request=True, text=text or "hey, collab?", at=now)
            opened.append(asdict(conv))
        return {"comments": made, "messages": sent, "message_requests": opened}

    def visible_comments(self, video_id: str, parent: str | None) -> list[Comment]:
        """Comments of a video (top level, or the replies of `parent`), newest first."""
        found = [
            c
            for c in self.comments.values()
            if c.aweme_id == video_id and c.reply_to == parent and not c.deleted
        ]
        return sorted(found, key=lambda c: (-c.create_time, -int(c.cid)))

    def videos_of(self, unique_id: str) -> list[Video]:
        """A user's videos, newest first."""
        mine = (v for v in self.videos.values() if v.author == unique_id)
        return sorted(mine, key=lambda v: (-v.create_time, v.id))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (`GET /_admin/state`)."""
        return {
            "config": self.config.public(),
            "tikapi": {
                "users": [asdict(u) for u in self.users.values()],
                "followers": self.followers_of,
                "hashtags": self.hashtags,
                "videos": [asdict(v) for v in self.videos.values()],
                "comments": [asdict(c) for c in self.comments.values()],
                "conversations": [asdict(c) for c in self.conversations.values()],
                "messages": [asdict(m) for m in self.messages],
            },
            "tiktok": {
                "publishes": [asdict(p) for p in self.publishes.values()],
                "refresh_calls": self.refresh_calls,
            },
            "highlevel": {"posts": list(self.highlevel_posts.values())},
            "dumpling": {"credits": self.dumpling_credits},
            "socialapi": {
                "posts": list(self.socialapi_posts.values()),
                "account_expired": self.socialapi_expired,
            },
            "tokens": {
                "tikapi": {
                    "api_keys": sorted(self.tikapi_api_keys),
                    "account_keys": dict(self.tikapi_account_keys),
                    "expired_account_keys": sorted(self.expired_account_keys),
                    "removed_account_keys": dict(self.removed_account_keys),
                },
                "tiktok": {
                    "access_tokens": {
                        t: {"open_id": o, "expires_at": e} for t, (o, e) in self.tiktok_access.items()
                    },
                    "refresh_tokens": {
                        t: {"open_id": o, "expires_at": e} for t, (o, e) in self.tiktok_refresh.items()
                    },
                },
                **{provider: sorted(keys) for provider, keys in self.bearer_keys.items()},
            },
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "rate_limited": sum(n for k, n in self.statuses.items() if k.endswith(" 429")),
        }
