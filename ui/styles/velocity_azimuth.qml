<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.16-Białowieża" minScale="1e+08" maxScale="0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>1</Searchable>
    <Private>0</Private>
  </flags>
  <temporal enabled="0" mode="0" fetchMode="0">
    <fixedRange>
      <start></start>
      <end></end>
    </fixedRange>
  </temporal>
  <customproperties>
    <Option type="Map">
      <Option name="identify/format" value="Value" type="QString"/>
    </Option>
  </customproperties>
  <pipe-data-defined-properties>
    <Option type="Map">
      <Option name="name" value="" type="QString"/>
      <Option name="properties"/>
      <Option name="type" value="collection" type="QString"/>
    </Option>
  </pipe-data-defined-properties>
  <pipe>
    <provider>
      <resampling zoomedInResamplingMethod="nearestNeighbour" maxOversampling="2" enabled="false" zoomedOutResamplingMethod="nearestNeighbour"/>
    </provider>
    <rasterrenderer band="2" classificationMax="360" opacity="1" classificationMin="0" nodataColor="" alphaBand="-1" type="singlebandpseudocolor">
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader maximumValue="360" classificationMode="1" clip="0" labelPrecision="6" minimumValue="0" colorRampType="INTERPOLATED">
          <colorramp name="[source]" type="gradient">
            <Option type="Map">
              <Option name="color1" value="215,25,28,255" type="QString"/>
              <Option name="color2" value="215,25,28,255" type="QString"/>
              <Option name="discrete" value="0" type="QString"/>
              <Option name="rampType" value="gradient" type="QString"/>
              <Option name="stops" value="0.166667;253,174,97,255:0.333333;255,255,191,255:0.5;26,150,65,255:0.666667;43,131,186,255:0.833333;123,50,148,255" type="QString"/>
            </Option>
            <prop v="215,25,28,255" k="color1"/>
            <prop v="215,25,28,255" k="color2"/>
            <prop v="0" k="discrete"/>
            <prop v="gradient" k="rampType"/>
            <prop v="0.166667;253,174,97,255:0.333333;255,255,191,255:0.5;26,150,65,255:0.666667;43,131,186,255:0.833333;123,50,148,255" k="stops"/>
          </colorramp>
          <item label="0" alpha="255" color="#d7191c" value="0"/>
          <item label="36" alpha="255" color="#ee7245" value="36"/>
          <item label="72" alpha="255" color="#fdbe74" value="72"/>
          <item label="108" alpha="255" color="#ffefac" value="108"/>
          <item label="144" alpha="255" color="#a3d58d" value="144"/>
          <item label="180" alpha="255" color="#1a9641" value="180"/>
          <item label="216" alpha="255" color="#248b8a" value="216"/>
          <item label="252" alpha="255" color="#3b73b2" value="252"/>
          <item label="288" alpha="255" color="#6b429c" value="288"/>
          <item label="324" alpha="255" color="#a02864" value="324"/>
          <item label="360" alpha="255" color="#d7191c" value="360"/>
          <rampLegendSettings direction="0" maximumLabel="" minimumLabel="" useContinuousLegend="1" suffix="" orientation="2" prefix="">
            <numericFormat id="basic">
              <Option type="Map">
                <Option name="decimal_separator" value="" type="QChar"/>
                <Option name="decimals" value="6" type="int"/>
                <Option name="rounding_type" value="0" type="int"/>
                <Option name="show_plus" value="false" type="bool"/>
                <Option name="show_thousand_separator" value="true" type="bool"/>
                <Option name="show_trailing_zeros" value="false" type="bool"/>
                <Option name="thousand_separator" value="" type="QChar"/>
              </Option>
            </numericFormat>
          </rampLegendSettings>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeStrength="100" colorizeGreen="128" colorizeRed="255" colorizeBlue="128" colorizeOn="0" grayscaleMode="0" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
