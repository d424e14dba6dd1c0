"""Data files shipped with the scenarios.

azure_llm_conv_2023.csv
    A real production request-arrival trace: one hour (19,366 requests, about 5.5 requests/s
    on average, bursty) of the conversation service in the Azure LLM inference trace 2023,
    published by Microsoft in the Azure Public Dataset (file
    `data/AzureLLMInferenceTrace_conv.csv` of the Azure/AzurePublicDataset repository).
    Licence: CC-BY 4.0. Cite: Patel et al., "Splitwise: Efficient generative LLM inference
    using phase splitting", ISCA 2024.

This attribution is repeated here because installed packages carry `.py` and `.csv` files but
not README.md (see README.md in this directory for the full description).
"""

from pathlib import Path

AZURE_LLM_CONV_2023 = Path(__file__).with_name("azure_llm_conv_2023.csv")
