"""Bot API objects as the bot receives them (msgspec Structs in Telegram's field names)."""

from __future__ import annotations

from typing import Any

import msgspec

# --- Bot API objects (wire shapes) ------------------------------------------------------


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class User(_Wire):
    id: int
    is_bot: bool
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool | None = None
    can_join_groups: bool | None = None
    can_read_all_group_messages: bool | None = None
    supports_inline_queries: bool | None = None


class Chat(_Wire):
    id: int
    type: str
    title: str | None = None  # groups and channels
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


class PhotoSize(_Wire):
    file_id: str
    file_unique_id: str
    width: int
    height: int
    file_size: int | None = None


class Document(_Wire):
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class Invoice(_Wire):
    title: str
    description: str
    start_parameter: str
    currency: str
    total_amount: int


class SuccessfulPayment(_Wire):
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str
    subscription_expiration_date: int | None = None
    is_recurring: bool | None = None
    is_first_recurring: bool | None = None


class RefundedPayment(_Wire):
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str | None = None


class Message(_Wire):
    message_id: int
    date: int
    chat: Chat
    from_: User | None = msgspec.field(default=None, name="from")
    sender_chat: Chat | None = None  # a channel post's channel
    edit_date: int | None = None
    reply_to_message: Message | None = None
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    link_preview_options: dict[str, Any] | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    photo: list[PhotoSize] | None = None
    document: Document | None = None
    invoice: Invoice | None = None
    successful_payment: SuccessfulPayment | None = None
    refunded_payment: RefundedPayment | None = None
    reply_markup: dict[str, Any] | None = None


class CallbackQuery(_Wire):
    id: str
    from_: User = msgspec.field(name="from")
    chat_instance: str
    message: Message | None = None
    data: str | None = None


class PreCheckoutQuery(_Wire):
    id: str
    from_: User = msgspec.field(name="from")
    currency: str
    total_amount: int
    invoice_payload: str


class ChatMemberUpdated(_Wire):
    chat: Chat
    from_: User = msgspec.field(name="from")
    date: int
    old_chat_member: dict[str, Any]
    new_chat_member: dict[str, Any]


def _member(status: str, user: User) -> dict[str, Any]:
    """A ChatMember object with every field aiogram requires for `status`."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member["can_be_edited"] = False
        member["is_anonymous"] = False
        for right in (
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "can_send_welcome_messages",
        ):
            member[right] = True
    elif status == "restricted":
        member["is_member"] = True
        member["until_date"] = 0
        for right in (
            "can_send_messages",
            "can_send_audios",
            "can_send_documents",
            "can_send_photos",
            "can_send_videos",
            "can_send_video_notes",
            "can_send_voice_notes",
            "can_send_polls",
            "can_send_other_messages",
            "can_add_web_page_previews",
            "can_react_to_messages",
            "can_edit_tag",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
            "can_manage_topics",
        ):
            member[right] = False
    elif status == "kicked":
        member["until_date"] = 0
    return member
