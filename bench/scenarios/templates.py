"""7. Templates: a caption template of realistic size rendered through POST /v1/templates/{id}/render, one
request after the other (latency as the client sees it: goal p99 < 100 ms), alternating with GET of the same
template (the same authentication and row read without a render: the baseline), the renderer alone in this process,
and posts created from the template through POST /v1/posts (template_id + variables) beside the same posts with
their caption given, so that the cost a template adds to a creation shows."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.client import make_accounts, post_body
from bench.context import Bench
from bench.stats import summary_ms
from chronogram.caption_templates import compile_template

NAME = "templates"
GOAL_RENDER_P99_MS = 100.0

# About 1,600 characters once rendered, 20 variables (each used twice), a few tags: a long caption.
_BODY = "\n".join(
    f"{{{{day_{i}}}}}: fresh {{{{bread_{i}}}}} from 7am, while it lasts. Ask for {{{{bread_{i}}}}} by name! #b{i}"
    for i in range(20)
)
_VARIABLES = {**{f"day_{i}": f"Day {i}" for i in range(20)}, **{f"bread_{i}": f"loaf {i}" for i in range(20)}}


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    template = await bench.api.request(
        "POST",
        "/v1/templates",
        expect=201,
        json={
            "name": f"bench {uuid.uuid4().hex[:8]}",
            "body": _BODY,
            "first_comment": "{{bread_0}} and {{bread_1}} #chronogram",
            "hashtags": ["#bakery"],
        },
    )
    path = f"/v1/templates/{template['id']}"
    renders: list[float] = []
    reads: list[float] = []
    text = ""
    for index in range(params.template_renders):
        began = time.perf_counter()
        rendered = await bench.api.request("POST", f"{path}/render", json={"variables": _VARIABLES})
        renders.append(time.perf_counter() - began)
        text = rendered["text"]
        # The baseline, alternating with it: the same template read, the same authentication and load, no render.
        began = time.perf_counter()
        await bench.api.request("GET", path)
        reads.append(time.perf_counter() - began)
        if index % 100 == 0:
            bench.progress.update(f"{NAME}: render {index + 1}/{params.template_renders}")

    alone: list[float] = []
    for _ in range(params.template_renders):
        began = time.perf_counter()
        compile_template(_BODY).render(_VARIABLES)
        alone.append(time.perf_counter() - began)

    account = (await make_accounts(bench.api, bench.sandbox, 1, "bench_templates"))[0]
    publish_at = datetime.now(UTC) + timedelta(days=1)
    from_template: list[float] = []
    with_caption: list[float] = []
    for index in range(params.template_posts):
        body = post_body(account_id=account.id, media_id=bench.media_id, publish_at=publish_at, caption=text)
        latency, _post = await bench.api.create_post(body)
        with_caption.append(latency)
        templated = {**body, "caption": None, "template_id": template["id"], "variables": _VARIABLES}
        templated.pop("first_comment")
        latency, post = await bench.api.create_post(templated)
        from_template.append(latency)
        assert post["caption"] == text, "the post's caption is not the rendering"
        if index % 20 == 0:
            bench.progress.update(f"{NAME}: post {index + 1}/{params.template_posts}")

    render_ms = summary_ms(renders)
    return {
        "path": "api",
        "rendered_chars": len(text),
        "variables": len(_VARIABLES),
        "render_api": render_ms,
        "read_template_api": summary_ms(reads),
        "render_alone": summary_ms(alone),
        "create_post_from_template": summary_ms(from_template),
        "create_post_with_caption": summary_ms(with_caption),
        "goals": [
            {
                "goal": f"render p99 under {GOAL_RENDER_P99_MS:g} ms (POST /v1/templates/{{id}}/render)",
                "measured": f"p99 {render_ms['p99_ms']} ms over {len(renders)} (p50 {render_ms['p50_ms']} ms)",
                "met": render_ms["p99_ms"] < GOAL_RENDER_P99_MS,
            }
        ],
    }
