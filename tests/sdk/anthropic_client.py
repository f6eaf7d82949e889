"""The official Anthropic SDK against glm-proxy: a plain message, a streamed one read with the
SDK's stream helper, and a tool-use round trip. Asserts on content; exits non-zero on failure.

Usage: anthropic_client.py BASE_URL
"""

import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1], api_key="sk-client", max_retries=0)
TOOLS = [
    {
        "name": "weather",
        "description": "The weather now in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
QUESTION = {"role": "user", "content": "What is the weather in Paris?"}

# A plain message.
plain = client.messages.create(
    model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "Say hello"}]
)
assert plain.type == "message" and plain.role == "assistant", plain
assert [block.type for block in plain.content] == ["thinking", "text"], plain.content
assert plain.content[1].text == "Hello from GLM.", plain.content
assert plain.stop_reason == "end_turn" and plain.usage.output_tokens == 5, plain
assert plain.model == "claude-sonnet-4-5"

# A streamed message through the stream helper: thinking, text and a tool call, accumulated.
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=256, tools=TOOLS, messages=[QUESTION]) as stream:
    streamed_text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert streamed_text == "Let me look.", streamed_text
assert [block.type for block in final.content] == ["thinking", "text", "tool_use"], final.content
assert final.content[0].thinking == "The user wants the weather.", final.content[0]
tool_use = final.content[2]
assert tool_use.id == "call_w1" and tool_use.name == "weather", tool_use
assert tool_use.input == {"city": "Paris"}, tool_use.input
assert final.stop_reason == "tool_use" and final.usage.output_tokens == 12, final

# The tool's result goes back under the call's id.
answer = client.messages.create(
    model="claude-sonnet-4-5",
    max_tokens=256,
    tools=TOOLS,
    messages=[
        QUESTION,
        {"role": "assistant", "content": [block.model_dump() for block in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21 C"}]},
    ],
)
assert answer.content[-1].text == "It is sunny in Paris.", answer.content

# Errors arrive as the SDK's typed exceptions.
try:
    client.messages.create(model="gpt-4o", max_tokens=16, messages=[QUESTION])
    raise AssertionError("an unknown model was served")
except anthropic.NotFoundError as error:
    assert error.body["error"]["type"] == "not_found_error", error.body

print("anthropic sdk: ok")
