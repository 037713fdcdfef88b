version 1.0

# Germline SNP and indel calling on an analysis-ready BAM. GATK's HaplotypeCaller is not
# packaged for Debian: bcftools mpileup | bcftools call does the calling here.

workflow variant_calling {
  input {
    File reference
    File bam
    File bai
  }
  call call_variants { input: reference = reference, bam = bam, bai = bai }
  output {
    File vcf = call_variants.vcf
    File vcf_index = call_variants.tbi
  }
}

task call_variants {
  input { File reference  File bam  File bai }
  command <<<
    set -euo pipefail
    cp ~{reference} reference.fa
    samtools faidx reference.fa
    ln -s ~{bam} sample.bam
    ln -s ~{bai} sample.bam.bai
    bcftools mpileup -f reference.fa sample.bam -Ou | bcftools call -mv -Oz -o calls.vcf.gz
    tabix -p vcf calls.vcf.gz
  >>>
  output { File vcf = "calls.vcf.gz"  File tbi = "calls.vcf.gz.tbi" }
}
