"""Getting upload bytes out of a request: multipart field `image` (or `video`), or a raw body with an image or
video content type. The content type only says how the bytes travel: the format is told from the bytes."""

from __future__ import annotations

from flask import request

from hashsvc.errors import MediaError, ValidationError


def image_bytes() -> bytes:
    """The uploaded image's bytes. Raises ValidationError when the request carries no image part."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image") or request.files.get("video")
        if upload is None:
            raise ValidationError("send the image in a multipart field named 'image' (or a video in 'video')")
        data = upload.read()
    elif request.mimetype.startswith(("image/", "video/")) or request.mimetype == "application/octet-stream":
        data = request.get_data(cache=False)
    else:
        raise ValidationError(
            "send the image as multipart/form-data (field 'image') or as the raw body with an image/* content type"
        )
    if not data:
        raise MediaError("empty", "the upload is empty")
    return data
