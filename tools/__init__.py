"""
tools/ — commands beside the story, run as modules from the repository's top:

    python -m tools.bench   how fast training runs here, and what a frozen base saves
    python -m tools.export  a checkpoint as a Hugging Face GPT-2 folder
"""
