"""The sandbox's world: seeded users, hashtags, videos, comments, messages, posts and keys.

Everything the five stand-ins serve lives here, so what one provider changes (a reply posted
through TikAPI) shows up in later listings. Deterministic for a given seed; time comes from an
injectable clock so tests never sleep.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DEMO_ACCOUNT_KEY",
    "DEMO_API_KEY",
    "SandboxConfig",
    "World",
]

#: TikAPI's documented sandbox keys (tikapi-endpoints.md), accepted by default.
DEMO_API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
DEMO_ACCOUNT_KEY = "DemoAccountKeyTokenSeHYGXDfd4SFD320Sc39A"
#: Fixed keys of the other providers' sandboxes (documented in `tikflow sandbox --help` output).
DUMPLING_KEY = "sk_sandbox_dumpling_0123456789abcdef"
SOCIALAPI_KEY = "sk_sandbox_socialapi_0123456789abcdef"
HIGHLEVEL_TOKEN = "pit-sandbox-highlevel-0123456789abcdef"
TIKTOK_CLIENT_KEY = "sbawsandboxclientkey"
TIKTOK_CLIENT_SECRET = "sandbox-client-secret-0123456789"
#: HighLevel's example ids from its docs (seed 000).
HIGHLEVEL_LOCATION = "ve9EPM428h8vShlRW1KT"
HIGHLEVEL_ACCOUNT = "6582fba7ae57770a2c0b5b3c_ve9EPM428h8vShlRW1KT_7168938218329163778"
HIGHLEVEL_USER = "TqeG7o8JkJe0zvGFiEJB"

_WORDS = (
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


@dataclass
class SandboxConfig:
    """How the sandbox behaves.

    Attributes:
        seed: Seed of the generated world and of probabilistic faults.
        comment_interval_s: >0: a new comment appears on a listed video every this many seconds
            (lazily, on listing); 0: comments only arrive through `POST /_admin/tick`.
        publish_polls: Status fetches after an upload completes before PUBLISH_COMPLETE.
        tiktok_token_ttl_s: `expires_in` of TikTok access tokens.
        tikapi_per_second: TikAPI requests per second per key (0 = unlimited).
        tikapi_daily: TikAPI requests per day per key (0 = unlimited).
        tikapi_retry_after: Seconds sent in Retry-After on TikAPI 429s (None = no header, as live).
        highlevel_burst: HighLevel requests per 10 s.
        highlevel_daily: HighLevel requests per day.
        dumpling_per_minute: DumplingAI requests per minute per key.
        clock: Time source (seconds since the epoch).
    """

    seed: int = 7
    comment_interval_s: float = 0.0
    publish_polls: int = 2
    tiktok_token_ttl_s: int = 86400
    tikapi_per_second: float = 0.0
    tikapi_daily: int = 0
    tikapi_retry_after: float | None = None
    highlevel_burst: int = 100
    highlevel_daily: int = 200_000
    dumpling_per_minute: int = 600
    clock: Callable[[], float] = field(default=time.time, repr=False)


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
    region: str = "US"


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
    liked_by: list[str] = field(default_factory=list)


@dataclass
class Comment:
    """A comment or a reply (`reply_to` is the parent's cid)."""

    cid: str
    aweme_id: str
    text: str
    author: str
    create_time: int
    reply_to: str | None = None
    liked_by: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Message:
    """A direct message."""

    id: str
    conversation_id: str
    sender: str
    text: str
    create_time: int


@dataclass
class Conversation:
    """A DM conversation; `request` ones wait in the message-requests tab."""

    conversation_id: str
    short_id: str
    ticket: str
    peer: str
    request: bool = False


class World:
    """All sandbox state, seeded from `config.seed`."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._ids = 7_300_000_000_000_000_000
        self.users: dict[str, User] = {}
        self.videos: dict[str, Video] = {}
        self.comments: dict[str, Comment] = {}
        self.hashtags: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, Conversation] = {}
        self.messages: list[Message] = []
        self.publishes: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.highlevel_posts: dict[str, dict[str, Any]] = {}
        self.socialapi_posts: dict[str, dict[str, Any]] = {}
        self.socialapi_request_ids: dict[str, str] = {}
        # Keys: TikAPI API keys, account keys → username; expired account keys.
        self.tikapi_api_keys: set[str] = {DEMO_API_KEY}
        self.tikapi_account_keys: dict[str, str] = {DEMO_ACCOUNT_KEY: "tikflow_demo"}
        self.expired_account_keys: set[str] = set()
        self.bearer_keys: dict[str, set[str]] = {
            "dumpling": {DUMPLING_KEY},
            "socialapi": {SOCIALAPI_KEY},
            "highlevel": {HIGHLEVEL_TOKEN},
        }
        self.socialapi_expired: bool = False
        # TikTok OAuth: access token → (open_id, expires_at); live refresh tokens; codes.
        self.tiktok_access: dict[str, tuple[str, float]] = {}
        self.tiktok_refresh: dict[str, str] = {}
        self.tiktok_codes: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.refresh_calls = 0
        self.last_arrival = config.clock()
        self._seed()

    # -- ids and time -----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock."""
        return self.config.clock()

    def new_id(self) -> str:
        """A fresh TikTok-style numeric id."""
        self._ids += self.rng.randint(1_000, 9_999_999)
        return str(self._ids)

    def token(self, prefix: str, size: int = 32) -> str:
        """A fresh random-looking secret, deterministic under the seed."""
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return prefix + "".join(self.rng.choice(alphabet) for _ in range(size))

    # -- seed -------------------------------------------------------------------------------

    def _user(self, unique_id: str, followers: int, user_id: str | None = None) -> User:
        user = User(
            id=user_id or self.new_id(),
            unique_id=unique_id,
            nickname=unique_id.replace("_", " ").title(),
            sec_uid="MS4wLjABAAAA" + self.token("", 40),
            followers=followers,
            following=self.rng.randint(10, 900),
            hearts=followers * self.rng.randint(3, 20),
        )
        self.users[unique_id] = user
        return user

    def _seed(self) -> None:
        now = int(self.now())
        self._user("lilyachty", 9_800_000, user_id="6802045838165393414")
        self._user("stoolpresidente", 4_100_000, user_id="6747935906352907269")
        self._user("tikflow_demo", 1_250)
        fans = [
            self._user(name, self.rng.randint(10, 5000))
            for name in (
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
        ]
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
        authors = {
            "lilyachty": ["lilyachty"],
            "cats": [f.unique_id for f in fans[:4]],
            "tikflowdemo": ["tikflow_demo", "nina_art", "crafty_jo"],
        }
        for tag, owners in authors.items():
            for n in range(12 if tag != "lilyachty" else 5):
                video = Video(
                    id=self.new_id(),
                    author=owners[n % len(owners)],
                    desc=f"video {n} #{tag} #fyp",
                    create_time=now - 3600 * (n + 1) * 7,
                    hashtags=[tag],
                    plays=self.rng.randint(500, 900_000),
                    likes=self.rng.randint(10, 50_000),
                )
                self.videos[video.id] = video
                for _ in range(self.rng.randint(2, 6)):
                    self.add_comment(video.id, created=now - self.rng.randint(60, 3600 * 24))
        # Our own account's inbox: one conversation, one waiting request.
        for peer, is_request in (("buyer_bob", False), ("sara.travels", True)):
            conv = Conversation(
                conversation_id=f"0:1:{self.users['tikflow_demo'].id}:{self.users[peer].id}",
                short_id=self.new_id(),
                ticket=self.token("ticket_", 24),
                peer=peer,
                request=is_request,
            )
            self.conversations[conv.conversation_id] = conv
            self.messages.append(
                Message(self.new_id(), conv.conversation_id, peer, "hi! is this still available?", now - 600)
            )

    # -- changes ----------------------------------------------------------------------------

    def add_comment(
        self,
        video_id: str,
        *,
        text: str | None = None,
        author: str | None = None,
        reply_to: str | None = None,
        created: int | None = None,
    ) -> Comment:
        """Add a comment (random text and fan author unless given)."""
        fans = [u for u in self.users if u not in ("tikflow_demo", "lilyachty", "stoolpresidente")]
        comment = Comment(
            cid=self.new_id(),
            aweme_id=video_id,
            text=text or self.rng.choice(_WORDS),
            author=author or self.rng.choice(fans),
            create_time=created or int(self.now()),
            reply_to=reply_to,
        )
        self.comments[comment.cid] = comment
        return comment

    def arrive(self, video_ids: list[str]) -> None:
        """New comments that 'arrived' since the last listing, when arrivals are on."""
        interval = self.config.comment_interval_s
        if interval <= 0 or not video_ids:
            return
        due = int((self.now() - self.last_arrival) / interval)
        for _ in range(min(due, 50)):
            self.add_comment(self.rng.choice(video_ids))
        if due:
            self.last_arrival += due * interval

    def tick(
        self,
        comments: int = 0,
        video_id: str | None = None,
        hashtag: str | None = None,
        messages: int = 0,
        followers: dict[str, int] | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Add comments (on a video, a hashtag's videos, or anywhere), DMs and follower changes now."""
        for handle, delta in (followers or {}).items():
            self.users[handle].followers += delta
        if video_id:
            targets = [video_id]
        elif hashtag:
            targets = [v.id for v in self.videos.values() if hashtag in v.hashtags]
        else:
            targets = list(self.videos)
        made = (
            [asdict(self.add_comment(self.rng.choice(targets), text=text)) for _ in range(comments)]
            if targets
            else []
        )
        sent = []
        for _ in range(messages):
            conv = self.rng.choice([c for c in self.conversations.values() if not c.request])
            msg = Message(
                self.new_id(), conv.conversation_id, conv.peer, self.rng.choice(_WORDS), int(self.now())
            )
            self.messages.append(msg)
            sent.append(asdict(msg))
        return {"comments": made, "messages": sent}

    def visible_comments(self, video_id: str, parent: str | None) -> list[Comment]:
        """Comments of a video (top level, or replies of `parent`), newest first."""
        found = [
            c
            for c in self.comments.values()
            if c.aweme_id == video_id and c.reply_to == parent and not c.deleted
        ]
        return sorted(found, key=lambda c: (-c.create_time, c.cid))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (`GET /_admin/state`)."""
        return {
            "tikapi": {
                "users": [asdict(u) for u in self.users.values()],
                "hashtags": self.hashtags,
                "videos": [asdict(v) for v in self.videos.values()],
                "comments": [asdict(c) for c in self.comments.values()],
                "conversations": [asdict(c) for c in self.conversations.values()],
                "messages": [asdict(m) for m in self.messages],
                "expired_account_keys": sorted(self.expired_account_keys),
            },
            "tiktok": {"publishes": list(self.publishes.values()), "refresh_calls": self.refresh_calls},
            "highlevel": {"posts": list(self.highlevel_posts.values())},
            "socialapi": {"posts": list(self.socialapi_posts.values())},
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "rate_limited": sum(v for k, v in self.statuses.items() if k.endswith(" 429")),
        }
