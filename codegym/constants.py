"""Constants shared by the env, the agents and the tokenisation rule."""

#: The action that ends an episode (submit the program). ASCII 0x04 "end of transmission":
#: a line made of this single control character is never valid Python, so it can never be
#: a code line. An LLM agent maps its EOS token to it.
SUBMIT: str = "\x04"
