"""Getting image bytes out of a request: multipart field `image`, or a raw body with an image content type."""

from __future__ import annotations

from flask import request

from hashsvc.errors import MediaError, ValidationError


def image_bytes() -> bytes:
    """The uploaded image's bytes. Raises ValidationError when the request carries no image part."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ValidationError("send the image in a multipart field named 'image'")
        data = upload.read()
    elif request.mimetype.startswith("image/") or request.mimetype == "application/octet-stream":
        data = request.get_data(cache=False)
    else:
        raise ValidationError(
            "send the image as multipart/form-data (field 'image') or as the raw body with an image/* content type"
        )
    if not data:
        raise MediaError("empty", "the upload is empty")
    return data
